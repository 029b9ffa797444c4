"""Building submissions for tests from the course's own files."""

from __future__ import annotations

from pathlib import Path

from tests.support.paths import REFERENCE


def course_notebook(assignment: str, which: str) -> bytes:
    return (REFERENCE / assignment / "notebooks" / f"{which}.ipynb").read_bytes()


def variants(assignment: str) -> list[Path]:
    return sorted((REFERENCE / assignment / "variants").glob("*.py"))
