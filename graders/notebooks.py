"""Writing notebooks: for course authors' starter/solution files and for tests."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def notebook_text(cells: list[tuple[str, str]]) -> str:
    """cells: ("markdown" | "code", source) pairs, in order."""
    notebook = new_notebook(
        cells=[
            new_markdown_cell(src) if kind == "markdown" else new_code_cell(src)
            for kind, src in cells
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    text: str = nbformat.writes(notebook)
    return text


def write_notebook(path: Path, cells: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebook_text(cells))


def code_notebook(*sources: str) -> bytes:
    """A notebook of code cells only, as bytes ready to upload."""
    return notebook_text([("code", s) for s in sources]).encode()


def with_extra_cell(notebook: bytes, source: str) -> bytes:
    """The notebook with one more code cell at the end (a variant, a test's addition)."""
    nb = nbformat.reads(notebook.decode(), as_version=4)
    nb.cells.append(new_code_cell(source))
    text: str = nbformat.writes(nb)
    return text.encode()
