"""Helpers shared by the tests (no fixtures: those live in conftest.py files).

paths          where things are: the repository, the bundled course, its assignments
stack          running the real service: PostgreSQL, Redis, `autograder` processes
staffing       courses of their own inside a running service (a Stack or the in-process
               one: `Deployment`), rows written directly, waiting for grades
notebooks      submissions built from the course's own files
authoring_notebooks  small nbgrader / Otter source notebooks for the import tests
manual_answers hw2 notebooks answering the manual exercise, for the grading pages' tests
sandbox        what the sandbox tests share: planted secrets, what a student can read
isolation      a missing sandbox layer: skip, or fail where CI expects every layer
inprocess      the fast tier: the real app in-process over SQLite, an in-process queue
               that grades with the worker's own code
hostile_archives  archives built to attack the publishing endpoint's unpacking
browser        Debian's Chromium under Playwright for the page tests
compose_limits a script: run a command under a Docker-style seccomp profile
"""
