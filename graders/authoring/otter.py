"""Otter Assign's v1 master-notebook format, as Otter Assign reads it.

Raw cells delimit blocks, each starting with a comment line and holding YAML:
`# ASSIGNMENT CONFIG`, `# BEGIN QUESTION` (`name`, `points`, `manual`) ... `# END
QUESTION`, and inside a question `# BEGIN SOLUTION` / `# END SOLUTION`, `# BEGIN PROMPT` /
`# END PROMPT`, `# BEGIN TESTS` / `# END TESTS`. Code in a solution block follows
jAssign's rules: a line ending in `# SOLUTION` becomes `...` (only its right-hand side
for an assignment), one ending in `# SOLUTION NO PROMPT` or `# SEED` goes, a
`# BEGIN SOLUTION [NO PROMPT]` ... `# END SOLUTION` region becomes `...` (or nothing),
and a triple-quoted `# BEGIN PROMPT` ... `# END PROMPT` string is what the student sees.
Each code cell of a tests block is one test case: `# HIDDEN` on its first line hides it,
a triple-quoted `# BEGIN TEST CONFIG` ... `# END TEST CONFIG` string sets `hidden`, `points`,
`success_message`, `failure_message`. Test cells are OK-format (the last expression's
value is what is compared) unless the assignment config says `tests: {ok_format: false}`
or the cell defines `test_*` functions (exception-based). A question's points are split
over its test cases as Otter resolves them.
"""

from __future__ import annotations

import ast
import re
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

BOUNDARY = re.compile(
    r"^\s*#\s*(ASSIGNMENT CONFIG|BEGIN QUESTION|END QUESTION|BEGIN SOLUTION|"
    r"END SOLUTION|BEGIN PROMPT|END PROMPT|BEGIN TESTS|END TESTS)\s*$",
    re.IGNORECASE,
)
BEGIN_REGION = re.compile(r"^(\s*)#\s*BEGIN SOLUTION(\s+NO PROMPT)?\s*$", re.IGNORECASE)
END_REGION = re.compile(r"^\s*#\s*END SOLUTION\s*$", re.IGNORECASE)
BEGIN_PROMPT = re.compile(r"^\s*(?:\"\"\"|''')\s*#\s*BEGIN PROMPT\s*$", re.IGNORECASE)
END_PROMPT = re.compile(r"^\s*(?:\"\"\"|''');?\s*#\s*END PROMPT\s*$", re.IGNORECASE)
NO_PROMPT_LINE = re.compile(r"\s*#\s*(SOLUTION NO PROMPT|SEED)\s*$", re.IGNORECASE)
SOLUTION_LINE = re.compile(r"\s*#\s*SOLUTION\s*$", re.IGNORECASE)
IGNORE_LINE = re.compile(r"#\s*IGNORE\s*$", re.IGNORECASE)
IGNORE_CELL = re.compile(r"^\s*##\s*ignore\s*##", re.IGNORECASE)
BEGIN_TEST_CONFIG = re.compile(r'^(?:.\s*=\s*)?"""?\s*#\s*BEGIN\s*TEST\s*CONFIG', re.IGNORECASE)
END_TEST_CONFIG = re.compile(r'^"""?\s*#\s*END\s*TEST\s*CONFIG', re.IGNORECASE)
MARKDOWN_PLACEHOLDER = "_Type your answer here, replacing this text._"
#: A code cell outside any solution block that uses the markers is a solution cell too.
SOLUTION_MARKERS = re.compile(
    r"(#\s*(SOLUTION( NO PROMPT)?|SEED)\s*$)|(^\s*#\s*BEGIN SOLUTION)", re.MULTILINE
)


def _yaml(text: str, where: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as exc:  # a dev dependency of the project
        raise AuthoringError(
            "importing an Otter notebook needs PyYAML (pip install pyyaml)"
        ) from exc
    try:
        value = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise AuthoringError(f"{where}: its YAML cannot be read: {exc}") from exc
    if not isinstance(value, dict):
        raise AuthoringError(f"{where}: its YAML should be a mapping of keys to values")
    return value


def _strip_marker(line: str, marker: re.Pattern[str]) -> str:
    return marker.sub("", line).rstrip()


def _prompted(line: str) -> str:
    """A `... # SOLUTION` line for the student: `...`, or only the value replaced."""
    code = _strip_marker(line, SOLUTION_LINE)
    indent = code[: len(code) - len(code.lstrip())]
    try:
        stmt = ast.parse(code.strip()).body
    except SyntaxError:
        stmt = []
    if (
        len(stmt) == 1
        and isinstance(stmt[0], ast.Assign | ast.AnnAssign | ast.AugAssign)
        and stmt[0].value is not None
    ):
        return indent + code.strip()[: stmt[0].value.col_offset] + "..."
    return indent + "..."


def replace_solutions(text: str, where: str) -> tuple[str, str, list[str]]:
    """(student version, solution version, the solution's lines) of a code cell."""
    student: list[str] = []
    solution: list[str] = []
    secret: list[str] = []
    region: str | None = None  # None, "prompt" (a `...` line) or "silent"
    in_prompt = False
    for number, line in enumerate(lines_of(text), 1):
        if in_prompt:
            if END_PROMPT.match(line):
                in_prompt = False
            else:
                student.append(line)
            continue
        if region is not None:
            if END_REGION.match(line):
                region = None
            else:
                solution.append(line)
                secret.append(line)
            continue
        begin = BEGIN_REGION.match(line)
        if begin:
            region = "silent" if begin.group(2) else "prompt"
            if region == "prompt":
                student.append(begin.group(1) + "...")
        elif END_REGION.match(line):
            raise AuthoringError(
                f"{where}: `# END SOLUTION` without `# BEGIN SOLUTION` (line {number})"
            )
        elif BEGIN_PROMPT.match(line):
            in_prompt = True
        elif NO_PROMPT_LINE.search(line):
            solution.append(_strip_marker(line, NO_PROMPT_LINE))
            secret.append(solution[-1])
        elif SOLUTION_LINE.search(line):
            solution.append(_strip_marker(line, SOLUTION_LINE))
            secret.append(solution[-1].split("=", 1)[-1])
            student.append(_prompted(line))
        else:
            student.append(line)
            solution.append(line)
    if region is not None:
        raise AuthoringError(f"{where}: a `# BEGIN SOLUTION` is never closed")
    if in_prompt:
        raise AuthoringError(f'{where}: a `""" # BEGIN PROMPT` is never closed')
    return joined(student), joined(solution), secret


def _spread(total: float, count: int) -> list[float]:
    """`total` in `count` equal shares rounded as scores are (6 decimals), summing to it."""
    if count == 0:
        return []
    shares = [round(total / count, 6)] * count
    shares[-1] = round(total - sum(shares[:-1]), 6)
    return shares


def resolve_points(question: Any, cases: list[float | None], where: str) -> list[float]:
    """Each test case's points, as Otter resolves a question's and its cases' points."""
    n = len(cases)
    if isinstance(question, dict):
        question = float(question.get("each", 1)) * n
    if isinstance(question, list):
        if len(question) != n:
            raise AuthoringError(
                f"{where}: `points` lists {len(question)} values for {n} test cases"
            )
        return [float(p) for p in question]
    if question is not None and not isinstance(question, int | float):
        raise AuthoringError(
            f"{where}: `points` should be a number, a list or {{each: number}}, not {question!r}"
        )
    given = [float(p) for p in cases if p is not None]
    unset = n - len(given)
    if question is None:
        if given and not all(p == 0 for p in given):
            rest = 0.0
        else:
            rest = 1.0
    else:
        rest = float(question) - sum(given)
        if unset == 0 and abs(rest) > 1e-9:
            raise AuthoringError(
                f"{where}: its test cases are worth {sum(given):g} points "
                f"but the question says {question}"
            )
        if rest < -1e-9:
            raise AuthoringError(
                f"{where}: its test cases' points add up to more than the question's {question}"
            )
    shares = iter(_spread(rest, unset))
    return [float(p) if p is not None else next(shares) for p in cases]


class _Question:
    def __init__(self, config: dict[str, Any], where: str) -> None:
        name = config.get("name")
        if not isinstance(name, str) or not name:
            raise AuthoringError(f"{where}: `# BEGIN QUESTION` needs a `name`")
        self.name = name
        self.where = where
        self.points = config.get("points")
        self.manual = bool(config.get("manual", False))
        self.block: str | None = None
        self.cases: list[tuple[PlannedTest, float | None]] = []
        self.has_prompt = False
        self.solution_cells = 0


def parse(nb: Any, slug: str, per_assert: bool = False) -> ImportPlan:
    plan = new_plan("otter", nb, slug, per_assert)
    ok_format = True
    question: _Question | None = None
    for number, cell in enumerate(nb.cells, 1):
        where = f"cell {number}"
        text = source_of(cell)
        first = text.strip().split("\n", 1)[0] if text.strip() else ""
        boundary = BOUNDARY.match(first) if cell.cell_type == "raw" else None
        if boundary:
            kind = boundary.group(1).upper()
            body = text.strip().split("\n", 1)[1] if "\n" in text.strip() else ""
            if kind == "ASSIGNMENT CONFIG":
                config = _yaml(body, where)
                tests = config.get("tests")
                if isinstance(tests, dict) and tests.get("ok_format") is False:
                    ok_format = False
                if isinstance(config.get("name"), str):
                    plan.title = config["name"]
                if config.get("files"):
                    plan.warnings.append(
                        "the assignment config lists `files`; they are not "
                        "copied: put helper modules in public/"
                    )
            elif kind == "BEGIN QUESTION":
                if question is not None:
                    raise AuthoringError(
                        f"{where}: a question begins inside question {question.name!r}"
                    )
                question = _Question(_yaml(body, where), where)
            elif kind == "END QUESTION":
                if question is None:
                    raise AuthoringError(f"{where}: `# END QUESTION` outside a question")
                _close_question(plan, question)
                question = None
            else:
                _block(question, kind, where)
            continue
        if cell.cell_type == "code" and IGNORE_CELL.match(text):
            continue
        block = question.block if question is not None else None
        if block == "TESTS":
            assert question is not None
            _test_case(plan, question, cell, text, ok_format, where)
        elif block == "SOLUTION" or (cell.cell_type == "code" and SOLUTION_MARKERS.search(text)):
            _solution(plan, question, cell, text, where)
        elif block == "PROMPT":
            assert question is not None
            question.has_prompt = True
            tags = (question.name,) if question.manual else ()
            plan.starter.append(output_cell(cell.cell_type, text, tags))
            add_public(plan, text)
        else:
            keep_cell(plan, cell.cell_type, text, where)
    if question is not None:
        raise AuthoringError(
            f"question {question.name!r} ({question.where}) has no `# END QUESTION`"
        )
    if not any(e.kind == "function" for e in plan.exercises):
        raise AuthoringError(
            "the notebook has no autograded question (one with test cells "
            "between `# BEGIN TESTS` and `# END TESTS`)"
        )
    return plan


def _block(question: _Question | None, kind: str, where: str) -> None:
    if question is None:
        raise AuthoringError(f"{where}: `# {kind}` outside a question")
    opening, _, name = kind.partition(" ")
    if opening == "BEGIN":
        if question.block is not None:
            raise AuthoringError(
                f"{where}: `# {kind}` inside the {question.block.lower()} "
                f"block of question {question.name!r}"
            )
        question.block = name
    elif question.block != name:
        raise AuthoringError(
            f"{where}: `# {kind}` does not close an open block of question {question.name!r}"
        )
    else:
        question.block = None


def _solution(
    plan: ImportPlan, question: _Question | None, cell: Any, text: str, where: str
) -> None:
    tags = (question.name,) if question is not None and question.manual else ()
    if question is not None:
        question.solution_cells += 1
    if cell.cell_type == "code":
        student, solution, secret = replace_solutions(text, where)
        add_answer(plan, "code", student, solution, secret, where, tags)
        return
    add_secret(plan, lines_of(text))
    if question is None or not question.has_prompt:
        plan.starter.append(output_cell("markdown", MARKDOWN_PLACEHOLDER, tags))
    plan.solution.append(output_cell(cell.cell_type, text, tags))


def _test_case(
    plan: ImportPlan, question: _Question, cell: Any, text: str, ok_format: bool, where: str
) -> None:
    if cell.cell_type != "code":
        raise AuthoringError(
            f"{where}: a tests block of question {question.name!r} holds a "
            f"{cell.cell_type} cell; each test case is one code cell"
        )
    lines = lines_of(text)
    hidden = bool(
        lines
        and lines[0].lstrip().startswith("#")
        and re.search(r"\bhidden\b", lines[0], re.IGNORECASE)
    )
    start = 1 if hidden else 0
    config: dict[str, Any] = {}
    if lines and BEGIN_TEST_CONFIG.match(lines[0]):
        end = next((i for i, line in enumerate(lines) if END_TEST_CONFIG.match(line)), None)
        if end is None:
            raise AuthoringError(f"{where}: a `# BEGIN TEST CONFIG` is never closed")
        config = _yaml("\n".join(lines[1:end]), where)
        start = end + 1
    hidden = bool(config.get("hidden", hidden))
    body = [line for line in lines[start:] if not IGNORE_LINE.search(line)]
    source = python(joined(body)) + "\n"
    if not source.strip():
        raise AuthoringError(f"{where}: an empty test case in question {question.name!r}")
    style = "ok"
    defines_tests = any(
        isinstance(s, ast.FunctionDef) and s.name.startswith("test")
        for s in _parsed(source, where).body
    )
    if defines_tests:
        style = "exception"
    elif not ok_format:
        style = "assert"
    if hidden:
        add_secret(plan, body)
    else:
        shown = source.rstrip("\n") + _calls(source, where)
        plan.starter.append(output_cell("code", shown))
        plan.solution.append(output_cell("code", shown))
        add_public(plan, shown)
    count = len(question.cases) + 1
    n_lines = len(source.rstrip("\n").split("\n"))
    points = config.get("points")
    if points is not None and (not isinstance(points, int | float) or isinstance(points, bool)):
        raise AuthoringError(f"{where}: test `points` should be a number, not {points!r}")
    question.cases.append(
        (
            PlannedTest(
                name=f"{question.name} test {count}" + (" (hidden)" if hidden else ""),
                source=source,
                position=len(plan.ref_cells),
                style=style,
                visibility="hidden" if hidden else "visible",
                hidden_lines=tuple(range(1, n_lines + 1)) if hidden else (),
                failure_message=str(config.get("failure_message") or ""),
                origin=where,
            ),
            None if points is None else float(points),
        )
    )


def _calls(source: str, where: str) -> str:
    """Calls of an exception-based test's functions, for students to run it themselves."""
    calls = []
    for stmt in _parsed(source, where).body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test"):
            args = ", ".join(
                f"{a.arg}=globals()" if a.arg == "env" else f"{a.arg}={a.arg}"
                for a in stmt.args.args
            )
            calls.append(f"{stmt.name}({args})")
    return "".join(f"\n{c}" for c in calls) if calls else ""


def _parsed(source: str, where: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise AuthoringError(
            f"{where}: the test case is not valid Python: {exc.msg} (line {exc.lineno})"
        ) from exc


def _close_question(plan: ImportPlan, question: _Question) -> None:
    if question.block is not None:
        raise AuthoringError(
            f"question {question.name!r}: its {question.block.lower()} block is never closed"
        )
    where = f"question {question.name!r} ({question.where})"
    if question.manual:
        if question.cases:
            raise AuthoringError(
                f"{where} is manual but has test cases; make it autograded "
                "(manual: false) or move its tests out"
            )
        if not isinstance(question.points, int | float) or question.points <= 0:
            raise AuthoringError(
                f"{where}: a manual question needs `points` (Otter refuses it too)"
            )
        plan.add_exercise(PlannedExercise(question.name, "manual", float(question.points), where))
        return
    if not question.cases:
        raise AuthoringError(f"{where} has no test cases and is not manual: nothing could grade it")
    points = resolve_points(question.points, [p for _, p in question.cases], where)
    exercise = plan.add_exercise(PlannedExercise(question.name, "function", sum(points), where))
    for (test, _), share in zip(question.cases, points, strict=True):
        test.points = share
        exercise.tests.append(test)
    if exercise.points <= 0:
        raise AuthoringError(f"{where} is worth no points")
