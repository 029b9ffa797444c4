"""Building submissions for tests from the course's own files."""

from __future__ import annotations

from pathlib import Path

import nbformat

REFERENCE = Path(__file__).resolve().parent.parent / "reference"


def course_notebook(assignment: str, which: str) -> bytes:
    return (REFERENCE / assignment / "notebooks" / f"{which}.ipynb").read_bytes()


def with_extra_cell(notebook: bytes, source: str) -> bytes:
    nb = nbformat.reads(notebook.decode(), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nbformat.writes(nb).encode()


def variants(assignment: str) -> list[Path]:
    return sorted((REFERENCE / assignment / "variants").glob("*.py"))
