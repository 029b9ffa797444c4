"""nbgrader's source notebook format, as nbgrader's own release and autograde steps read it.

Cell metadata `nbgrader` (schema_version 3): `solution` cells hold the student's answer
(`### BEGIN SOLUTION` / `### END SOLUTION` regions, or the whole cell without them),
`grade` cells without `solution` are autograder tests (`grade_id`, `points`; regions
`### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS` are removed from the student version),
`grade` + `solution` cells are manually graded answers, `task` cells manually graded
tasks, `locked` cells read-only (here: the notebook's own code, as any other cell).

In the starter, a code region becomes `# YOUR CODE HERE` / `raise NotImplementedError()`
(indented as the region), a Markdown one `YOUR ANSWER HERE`, as nbgrader's ClearSolutions
does; hidden tests go, visible tests stay. Each test cell is one exercise (slug: its
`grade_id`) worth its points, all or nothing, as nbgrader scores it (per assert with
`per_assert`).
"""

from __future__ import annotations

from typing import Any

from graders.authoring.plan import AuthoringError, ImportPlan, PlannedExercise, PlannedTest
from graders.authoring.source import (
    add_answer,
    add_public,
    add_secret,
    joined,
    keep_cell,
    lines_of,
    new_plan,
    output_cell,
    python,
    source_of,
)

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = "YOUR ANSWER HERE"
SCHEMA_VERSION = 3


def _regions(lines: list[str], begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """(begin line, end line) index pairs of the delimited regions, markers included."""
    regions, start = [], None
    for i, line in enumerate(lines):
        if begin in line:
            if start is not None:
                raise AuthoringError(f"{where}: `### {begin}` inside another one (line {i + 1})")
            start = i
        elif end in line:
            if start is None:
                raise AuthoringError(f"{where}: `### {end}` without `### {begin}` (line {i + 1})")
            regions.append((start, i))
            start = None
    if start is not None:
        raise AuthoringError(
            f"{where}: `### {begin}` (line {start + 1}) is never closed by `### {end}`"
        )
    return regions


def clear_solution(text: str, code: bool, where: str) -> tuple[str, str, list[str]]:
    """(student version, solution version, the solution's lines)."""
    lines = lines_of(text)
    regions = _regions(lines, BEGIN_SOLUTION, END_SOLUTION, where)
    if not regions:  # nbgrader replaces a solution cell without delimiters as a whole
        stub = "\n".join(CODE_STUB) if code else TEXT_STUB
        return stub, text, lines
    student: list[str] = []
    solution: list[str] = []
    secret: list[str] = []
    cursor = 0
    for start, stop in regions:
        student += lines[cursor:start]
        solution += lines[cursor:start]
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        student += [indent + s for s in CODE_STUB] if code else [indent + TEXT_STUB]
        solution += lines[start + 1 : stop]
        secret += lines[start + 1 : stop]
        cursor = stop + 1
    student += lines[cursor:]
    solution += lines[cursor:]
    return joined(student), joined(solution), secret


def split_hidden(text: str, where: str) -> tuple[str, str, tuple[int, ...], list[str]]:
    """(student version, test source, its hidden lines (1-based), the hidden lines' text)."""
    lines = lines_of(text)
    regions = _regions(lines, BEGIN_HIDDEN, END_HIDDEN, where)
    student: list[str] = []
    test: list[str] = []
    hidden: list[int] = []
    secret: list[str] = []
    cursor = 0
    for start, stop in regions:
        student += lines[cursor:start]
        test += lines[cursor:start]
        for line in lines[start + 1 : stop]:
            test.append(line)
            hidden.append(len(test))
            secret.append(line)
        cursor = stop + 1
    student += lines[cursor:]
    test += lines[cursor:]
    return joined(student), "\n".join(test).rstrip() + "\n", tuple(hidden), secret


def _points(meta: dict[str, Any], where: str) -> float:
    points = meta.get("points")
    if isinstance(points, str):
        try:
            points = float(points)
        except ValueError:
            points = None
    if not isinstance(points, int | float) or isinstance(points, bool) or points <= 0:
        raise AuthoringError(
            f"{where}: a graded cell needs `points` greater than 0 in its "
            f"nbgrader metadata (found {meta.get('points')!r})"
        )
    return float(points)


def _grade_id(meta: dict[str, Any], where: str) -> str:
    grade_id = meta.get("grade_id")
    if not isinstance(grade_id, str) or not grade_id:
        raise AuthoringError(
            f"{where}: a graded cell needs a `grade_id` in its nbgrader "
            "metadata (it becomes the exercise's slug)"
        )
    return grade_id


def parse(nb: Any, slug: str, per_assert: bool = False) -> ImportPlan:
    plan = new_plan("nbgrader", nb, slug, per_assert)
    for number, cell in enumerate(nb.cells, 1):
        where = f"cell {number}"
        meta = cell.get("metadata", {}).get("nbgrader") or {}
        version = meta.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            plan.warnings.append(
                f"{where}: nbgrader schema_version {version} is newer than "
                f"{SCHEMA_VERSION}, the one this import was written for"
            )
        text = source_of(cell)
        code = cell.cell_type == "code"
        solution, grade, task = (bool(meta.get(k)) for k in ("solution", "grade", "task"))
        if not solution and BEGIN_SOLUTION in text:
            raise AuthoringError(
                f"{where} has `### {BEGIN_SOLUTION}` but is not a solution cell (nbgrader "
                "metadata `solution: true`): nbgrader would show it to students as it is"
            )
        if not (grade and not solution and code) and BEGIN_HIDDEN in text:
            raise AuthoringError(
                f"{where} has `### {BEGIN_HIDDEN}` but is not an autograder "
                "test cell (nbgrader metadata `grade: true`, `solution: "
                "false`)"
            )
        if solution:
            _solution_cell(plan, cell, text, code, grade, meta, where)
        elif grade and code:
            _test_cell(plan, text, meta, where)
        elif grade or task:
            slug_ = _grade_id(meta, where)
            plan.add_exercise(PlannedExercise(slug_, "manual", _points(meta, where), where))
            plan.starter.append(output_cell(cell.cell_type, text, (slug_,)))
            plan.solution.append(output_cell(cell.cell_type, text, (slug_,)))
            add_public(plan, text)
        else:
            keep_cell(plan, cell.cell_type, text, where)
    if not any(e.kind == "function" for e in plan.exercises):
        raise AuthoringError(
            "the notebook has no autograder test cell (nbgrader metadata "
            "`grade: true`, `solution: false` on a code cell)"
        )
    return plan


def _solution_cell(
    plan: ImportPlan,
    cell: Any,
    text: str,
    code: bool,
    grade: bool,
    meta: dict[str, Any],
    where: str,
) -> None:
    student, solution, secret = clear_solution(text, code, where)
    tags: tuple[str, ...] = ()
    if grade:
        slug = _grade_id(meta, where)
        plan.add_exercise(PlannedExercise(slug, "manual", _points(meta, where), where))
        tags = (slug,)
    add_answer(plan, cell.cell_type, student, solution, secret, where, tags)


def _test_cell(plan: ImportPlan, text: str, meta: dict[str, Any], where: str) -> None:
    slug = _grade_id(meta, where)
    student, test, hidden, secret = split_hidden(text, where)
    add_secret(plan, secret)
    add_public(plan, student)
    exercise = plan.add_exercise(PlannedExercise(slug, "function", _points(meta, where), where))
    exercise.tests.append(
        PlannedTest(
            name=f"test cell {slug}",
            source=python(test) + "\n",
            position=len(plan.ref_cells),
            style="assert",
            visibility="hidden" if hidden else "visible",
            hidden_lines=hidden,
            points=exercise.points,
            origin=where,
        )
    )
    if student.strip():
        plan.starter.append(output_cell("code", student))
        plan.solution.append(output_cell("code", student))
