"""Helpers shared by the tests (no fixtures: those live in conftest.py files).

paths          where things are: the repository, the bundled course, its assignments
stack          running the real service: PostgreSQL, Redis, `autograder` processes
staffing       courses of their own inside a running stack, rows, waiting for grades
notebooks      submissions built from the course's own files
authoring_notebooks  small nbgrader / Otter source notebooks for the import tests
manual_answers hw2 notebooks answering the manual exercise, for the grading pages' tests
sandbox        what the sandbox tests share: planted secrets, what a student can read
inprocess      the fast tier: the real app in-process over SQLite, a fake queue
compose_limits a script: run a command under a Docker-style seccomp profile
"""
