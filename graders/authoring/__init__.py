"""Authoring: bringing instructors' own assignments into the project's format.

- `importer`: an nbgrader source notebook (`nbgrader`) or an Otter Assign v1 master
  notebook (`otter`) becomes an assignment folder (assignment.toml, reference.py,
  tests.py, notebooks/, public/, variants/README.txt).
- `imported`, `program`, `proxies`: how the imported tests run. They are the notebook's
  own Python, executed in the trusted grader; the student's names are proxies whose
  calls go through the sandbox and whose answers come back as data.
- `scaffold`: `autograder assignment new`, a folder in the project's own format.
- `bundle`: `pack(folder) -> bytes`, a deterministic .tar.gz of an assignment folder
  (and `unpack`, its careful inverse), for publishing.
"""
