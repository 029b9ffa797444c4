"""Reading a source notebook and writing the cells of the starter and solution notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from graders.authoring.plan import AuthoringError, ImportPlan, RefSource
from graders.intake import plain_python

KEPT_METADATA = ("kernelspec", "language_info")


def load_notebook(path: Path) -> Any:
    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except OSError as exc:
        raise AuthoringError(f"{path} cannot be read: {exc}") from exc
    except Exception as exc:  # nbformat's and json's own errors
        raise AuthoringError(f"{path} is not a Jupyter notebook: {exc}") from exc


def source_of(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def lines_of(text: str) -> list[str]:
    return text.split("\n")


def joined(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


def output_cell(kind: str, source: str, tags: tuple[str, ...] = ()) -> Any:
    """A cell of an output notebook: no outputs, no tool metadata, only tags."""
    metadata: dict[str, Any] = {"tags": list(tags)} if tags else {}
    if kind == "code":
        return new_code_cell(source, metadata=metadata)
    if kind == "markdown":
        return new_markdown_cell(source, metadata=metadata)
    return new_raw_cell(source, metadata=metadata)


def notebook_text(cells: list[Any], metadata: dict[str, Any]) -> str:
    kept = {k: metadata[k] for k in KEPT_METADATA if k in metadata}
    kept.setdefault(
        "kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"}
    )
    text: str = nbformat.writes(new_notebook(cells=cells, metadata=kept))
    return text


def python(source: str) -> str:
    """Notebook code as plain Python for reference.py (IPython magics become no-ops)."""
    return plain_python(source).rstrip("\n")


def title_of(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in source_of(cell).splitlines():
            if line.startswith("#"):
                title = line.lstrip("#").strip()
                if title:
                    return title[:200]
    return fallback


def add_secret(plan: ImportPlan, lines: list[str]) -> None:
    for line in lines:
        text = line.strip()
        if text:
            plan.secret_lines.add(text)


def add_public(plan: ImportPlan, text: str) -> None:
    for line in text.splitlines():
        if line.strip():
            plan.public_lines.add(line.strip())


# -- what both formats do with a cell ------------------------------------------------------
def new_plan(fmt: str, nb: Any, slug: str, per_assert: bool) -> ImportPlan:
    """An empty plan for a source notebook: its title and metadata."""
    return ImportPlan(fmt, title_of(nb, slug), metadata=dict(nb.metadata), per_assert=per_assert)


def keep_cell(plan: ImportPlan, kind: str, text: str, where: str) -> None:
    """A cell that is neither an answer nor a test: the same in the starter and the
    solution, read by students, and (code) part of reference.py's set-up."""
    if kind == "code":
        plan.ref_cells.append(RefSource("setup", where, python(text)))
    plan.starter.append(output_cell(kind, text))
    plan.solution.append(output_cell(kind, text))
    add_public(plan, text)


def add_answer(
    plan: ImportPlan,
    kind: str,
    student: str,
    solution: str,
    secret: list[str],
    where: str,
    tags: tuple[str, ...] = (),
) -> None:
    """An answer cell: the student's version in the starter, the solution's in the
    solution notebook (and, for code, in reference.py); the solution's lines are secret."""
    add_secret(plan, secret)
    add_public(plan, student)
    if kind == "code":
        plan.ref_cells.append(RefSource("solution", where, python(solution)))
    plan.starter.append(output_cell(kind, student, tags))
    plan.solution.append(output_cell(kind, solution, tags))
