"""An instructor's self-test of an assignment folder: do its tests tell right from wrong?

Grades the solution (must be full marks), the starter (must be zero), every buggy
variant in variants/ (must lose points on its own exercise and only there) and every
alternative correct implementation in alternatives/ (must be full marks). A variant
or alternative file is named `<exercise>__<what>.py` and holds only the function(s) it
changes; it is appended as one more cell after the solution notebook's cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from graders.course import LoadedAssignment, load_assignment
from graders.intake import NOTEBOOK
from graders.notebooks import with_extra_cell
from graders.runner import GradeReport, exercises_for, grade
from graders.sandbox_api import SandboxFactory

EPS = 1e-9


@dataclass
class CheckRow:
    assignment: str
    variant: str
    expectation: str
    scores: dict[str, float]
    total: float
    max_score: float
    ok: bool
    problem: str = ""


@dataclass
class CheckResult:
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)


def _grade(loaded: LoadedAssignment, data: bytes, factory: SandboxFactory) -> GradeReport:
    return grade(loaded, NOTEBOOK, data, factory)


def check_assignment(
    folder: Path,
    factory_for: Callable[[LoadedAssignment], SandboxFactory],
    progress: Callable[[str], None] | None = None,
) -> CheckResult:
    loaded = load_assignment(folder)
    factory = factory_for(loaded)
    slug = loaded.meta.slug
    code_exercises = [e.slug for e in exercises_for(loaded, NOTEBOOK)]
    result = CheckResult()
    notebooks = folder / "notebooks"
    solution = (notebooks / "solution.ipynb").read_bytes()

    def row(variant: str, expectation: str, report: GradeReport, ok: bool, problem: str) -> None:
        scores = {e: report.exercise_score(e) for e in code_exercises}
        result.rows.append(CheckRow(slug, variant, expectation, scores, report.score,
                                    report.max_score, ok, problem))
        if progress:
            progress(f"{slug} {variant}: {report.score:g}/{report.max_score:g} "
                     f"{'ok' if ok else 'FAIL ' + problem}")

    if code_exercises:
        full = _grade(loaded, solution, factory)
        problems = _not_full(full)
        row("solution", "full marks", full, not problems, problems)

        starter = _grade(loaded, (notebooks / "starter.ipynb").read_bytes(), factory)
        row("starter", "zero", starter, starter.score <= EPS,
            "" if starter.score <= EPS else f"starter scores {starter.score:g}")

        for path in sorted((folder / "alternatives").glob("*.py")):
            report = _grade(loaded, with_extra_cell(solution, path.read_text()), factory)
            problems = _not_full(report)
            row(f"alternative {path.stem}", "full marks", report, not problems, problems)

        for path in sorted((folder / "variants").glob("*.py")):
            exercise = path.stem.split("__")[0]
            report = _grade(loaded, with_extra_cell(solution, path.read_text()), factory)
            problem = _variant_problem(report, full, exercise)
            row(f"variant {path.stem}", f"loses points on {exercise} only", report,
                not problem, problem)

        counts = _variant_counts(folder, code_exercises)
        for exercise, count in counts.items():
            if count < 2:
                result.rows.append(CheckRow(slug, f"variants of {exercise}", "at least 2", {},
                                            0, 0, False, f"only {count} buggy variant(s)"))
    for extra in _extra_checks:
        extra(folder, loaded, factory, result)
    return result


#: Further checks registered by other parts of the grader (model exercises).
_extra_checks: list[Callable[[Path, LoadedAssignment, SandboxFactory, CheckResult], None]] = []


def register_check(
    fn: Callable[[Path, LoadedAssignment, SandboxFactory, CheckResult], None],
) -> Callable[[Path, LoadedAssignment, SandboxFactory, CheckResult], None]:
    _extra_checks.append(fn)
    return fn


def _variant_counts(folder: Path, exercises: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(exercises, 0)
    for path in (folder / "variants").glob("*.py"):
        exercise = path.stem.split("__")[0]
        if exercise in counts:
            counts[exercise] += 1
    return counts


def _not_full(report: GradeReport) -> str:
    lost = [t for t in report.tests if t.score + EPS < t.max_score]
    return "; ".join(f"{t.exercise}/{t.name}: {t.outcome} {t.feedback[:160]!r}" for t in lost)


def _variant_problem(report: GradeReport, full: GradeReport, exercise: str) -> str:
    if exercise not in report.exercises:
        return f"{exercise} is not an exercise of this assignment"
    if report.exercise_score(exercise) + EPS >= full.exercise_score(exercise):
        return f"{exercise} did not lose points"
    others = [
        e for e in report.exercises
        if e != exercise and report.exercise_score(e) + EPS < full.exercise_score(e)
    ]
    if others:
        return f"also lost points on {', '.join(others)}"
    return ""


def format_table(result: CheckResult) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="course check")
    for name in ("assignment", "submission", "expected", "score", "result"):
        table.add_column(name)
    for r in result.rows:
        table.add_row(r.assignment, r.variant, r.expectation, f"{r.total:g}/{r.max_score:g}",
                      "ok" if r.ok else f"FAIL: {r.problem}"[:200])
    console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()

