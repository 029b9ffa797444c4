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
from pathlib import Path

from graders.course import LoadedAssignment, load_assignment
from graders.intake import NOTEBOOK
from graders.notebooks import with_extra_cell
from graders.runner import GradeReport, exercises_for, grade
from graders.sandbox_api import SandboxFactory, SandboxProvider
from graders.selfcheck_models import check_model_exercises
from graders.selfcheck_report import EPS, WEAK_SHARE, CheckResult, CheckRow


def _grade(loaded: LoadedAssignment, data: bytes, factory: SandboxFactory) -> GradeReport:
    return grade(loaded, NOTEBOOK, data, factory)


def check_assignment(
    folder: Path,
    provider: SandboxProvider,
    progress: Callable[[str], None] | None = None,
) -> CheckResult:
    """Every step of the self-check, in order: code exercises, then model exercises."""
    loaded = load_assignment(folder)
    factory = provider((loaded.meta.public_dir,), None)
    slug = loaded.meta.slug
    code_exercises = [e.slug for e in exercises_for(loaded, NOTEBOOK)]
    result = CheckResult()
    notebooks = folder / "notebooks"
    solution = (notebooks / "solution.ipynb").read_bytes()

    def row(
        variant: str,
        expectation: str,
        report: GradeReport,
        ok: bool,
        problem: str,
        exercise: str | None = None,
    ) -> None:
        scores = {e: report.exercise_score(e) for e in code_exercises}
        lost = points = None
        if exercise is not None and exercise in scores:
            points = loaded.exercises[exercise].points
            lost = round(full.exercise_score(exercise) - scores[exercise], 6)
        result.rows.append(
            CheckRow(
                slug,
                variant,
                expectation,
                scores,
                report.score,
                report.max_score,
                ok,
                problem,
                lost,
                points,
            )
        )
        if progress:
            progress(
                f"{slug} {variant}: {report.score:g}/{report.max_score:g} "
                + (f"(lost {lost:g} of {points:g} on {exercise}) " if lost is not None else "")
                + ("ok" if ok else "FAIL " + problem)
            )

    if code_exercises:
        full = _grade(loaded, solution, factory)
        problems = _not_full(full)
        row("solution", "full marks", full, not problems, problems)

        starter = _grade(loaded, (notebooks / "starter.ipynb").read_bytes(), factory)
        row(
            "starter",
            "zero",
            starter,
            starter.score <= EPS,
            "" if starter.score <= EPS else f"starter scores {starter.score:g}",
        )

        for path in sorted((folder / "alternatives").glob("*.py")):
            report = _grade(loaded, with_extra_cell(solution, path.read_text()), factory)
            problems = _not_full(report)
            row(f"alternative {path.stem}", "full marks", report, not problems, problems)

        for path in sorted((folder / "variants").glob("*.py")):
            exercise = path.stem.split("__")[0]
            report = _grade(loaded, with_extra_cell(solution, path.read_text()), factory)
            problem = _variant_problem(report, full, exercise, loaded)
            row(
                f"variant {path.stem}",
                f"loses >= {WEAK_SHARE:.0%} of {exercise}, nothing elsewhere",
                report,
                not problem,
                problem,
                exercise,
            )

        counts = _variant_counts(folder, code_exercises)
        # An imported folder starts with none (nothing can write them automatically): a
        # warning there (variants/README.txt says what to add), a failure everywhere else.
        imported = loaded.meta.imported_from is not None
        for exercise, count in counts.items():
            if count < 2:
                result.rows.append(
                    CheckRow(
                        slug,
                        f"variants of {exercise}",
                        "at least 2"
                        + (
                            " (WARNING only: imported, see variants/README.txt)" if imported else ""
                        ),
                        {},
                        0,
                        0,
                        imported,
                        f"only {count} buggy variant(s)",
                    )
                )
    check_model_exercises(folder, loaded, provider, result)
    return result


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
            problems.append(
                f"weak test: loses only {lost:g} of the {points:g} points of "
                f"{exercise} (less than a quarter)"
            )
    others = [
        e
        for e in report.exercises
        if e != exercise and report.exercise_score(e) + EPS < full.exercise_score(e)
    ]
    if others:
        problems.append(f"also lost points on {', '.join(others)}")
    return "; ".join(problems)
