"""An instructor's self-test of an assignment folder: do its tests tell right from wrong?

Grades the solution (must be full marks), the starter (must be zero), every buggy
variant in variants/ (must lose points on its own exercise and only there) and every
alternative correct implementation in alternatives/ (must be full marks). A variant
or alternative file is named `<exercise>__<what>.py` and holds only the function(s) it
changes; it is appended as one more cell after the solution notebook's cells.

Each variant's row says how many of its exercise's points it loses; a variant that
loses less than a quarter of them (WEAK_SHARE) is a weak test, and fails the check: a
classic mistake should cost a real share of the exercise, not a rounding error.
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
#: A buggy variant must lose at least this share of its exercise's points.
WEAK_SHARE = 0.25


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
    #: For a variant: the points it loses on its own exercise, and that exercise's points.
    lost: float | None = None
    exercise_points: float | None = None

    @property
    def weak(self) -> bool:
        return (self.lost is not None and self.exercise_points is not None
                and self.lost + EPS < WEAK_SHARE * self.exercise_points)


@dataclass
class CheckResult:
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def weak(self) -> list[CheckRow]:
        return [r for r in self.rows if r.weak]


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

    def row(variant: str, expectation: str, report: GradeReport, ok: bool, problem: str,
            exercise: str | None = None) -> None:
        scores = {e: report.exercise_score(e) for e in code_exercises}
        lost = points = None
        if exercise is not None and exercise in scores:
            points = loaded.exercises[exercise].points
            lost = round(full.exercise_score(exercise) - scores[exercise], 6)
        result.rows.append(CheckRow(slug, variant, expectation, scores, report.score,
                                    report.max_score, ok, problem, lost, points))
        if progress:
            progress(f"{slug} {variant}: {report.score:g}/{report.max_score:g} "
                     + (f"(lost {lost:g} of {points:g} on {exercise}) " if lost is not None
                        else "")
                     + ('ok' if ok else 'FAIL ' + problem))

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
            problem = _variant_problem(report, full, exercise, loaded)
            row(f"variant {path.stem}",
                f"loses >= {WEAK_SHARE:.0%} of {exercise}, nothing elsewhere", report,
                not problem, problem, exercise)

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


def _variant_problem(
    report: GradeReport, full: GradeReport, exercise: str, loaded: LoadedAssignment
) -> str:
    if exercise not in report.exercises:
        return f"{exercise} is not an exercise of this assignment"
    lost = full.exercise_score(exercise) - report.exercise_score(exercise)
    problems = []
    if lost <= EPS:
        problems.append(f"{exercise} did not lose points")
    else:
        points = loaded.exercises[exercise].points
        if lost + EPS < WEAK_SHARE * points:
            problems.append(f"weak test: loses only {lost:g} of the {points:g} points of "
                            f"{exercise} (less than a quarter)")
    others = [
        e for e in report.exercises
        if e != exercise and report.exercise_score(e) + EPS < full.exercise_score(e)
    ]
    if others:
        problems.append(f"also lost points on {', '.join(others)}")
    return "; ".join(problems)


def format_table(result: CheckResult) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="course check")
    for name in ("assignment", "submission", "expected", "score", "lost on its exercise",
                 "result"):
        table.add_column(name)
    for r in result.rows:
        lost = ""
        if r.lost is not None and r.exercise_points is not None:
            lost = f"{r.lost:g} of {r.exercise_points:g}" + (" WEAK" if r.weak else "")
        table.add_row(r.assignment, r.variant, r.expectation, f"{r.total:g}/{r.max_score:g}",
                      lost, "ok" if r.ok else f"FAIL: {r.problem}"[:200])
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()

