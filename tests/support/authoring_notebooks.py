"""Small source notebooks for the authoring tests, written in each tool's format."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

#: A cell of a source notebook: its type, its source, its nbgrader metadata (or None).
SourceCell = tuple[str, str, dict[str, Any] | None]
_ids = itertools.count(1)


def _meta(**fields: Any) -> dict[str, Any]:
    return {
        "schema_version": 3,
        "grade": False,
        "solution": False,
        "locked": False,
        "grade_id": f"cell-{next(_ids)}",
        **fields,
    }


def solution(source: str, kind: str = "code") -> SourceCell:
    return (kind, source, _meta(solution=True))


def graded_test(source: str, grade_id: str, points: float) -> SourceCell:
    return ("code", source, _meta(grade=True, locked=True, grade_id=grade_id, points=points))


def manual(source: str, grade_id: str, points: float, kind: str = "markdown") -> SourceCell:
    return (kind, source, _meta(solution=True, grade=True, grade_id=grade_id, points=points))


def _write(path: Path, cells: list[Any]) -> Path:
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, str(path))
    return path


def nbgrader_notebook(path: Path, *cells: SourceCell) -> Path:
    out = []
    for kind, source, meta in cells:
        metadata = {"nbgrader": meta} if meta else {}
        out.append(
            new_code_cell(source, metadata=metadata)
            if kind == "code"
            else new_markdown_cell(source, metadata=metadata)
        )
    return _write(path, out)


def otter_notebook(path: Path, *cells: tuple[str, str]) -> Path:
    makers = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}
    return _write(path, [makers[kind](source) for kind, source in cells])
