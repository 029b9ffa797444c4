"""`autograder assignment import`: a source notebook becomes an assignment folder.

The import reads the notebook (graders.authoring.nbgrader / .otter), refuses what its
tests would need that the grader cannot give them (graders.authoring.checks), writes the
folder next to DIR, loads it as the worker will and runs every test against the solution
in the trusted grader, and only then moves it to DIR. Refusals are AuthoringError, whose
message is the sentence for the instructor.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from graders.authoring import nbgrader, otter
from graders.authoring.checks import check_leaks, check_plan
from graders.authoring.imported import mutating_answers, reference_problems
from graders.authoring.plan import SLUG, AuthoringError, ImportPlan
from graders.authoring.program import program_of
from graders.authoring.source import load_notebook, notebook_text, source_of
from graders.authoring.writer import write_folder
from graders.course import CourseError, load_assignment
from graders.dsl import GraderError

FORMATS = ("nbgrader", "otter")


@dataclass
class ImportReport:
    folder: Path
    title: str
    #: (slug, kind, points, number of tests) per exercise.
    exercises: list[tuple[str, str, float, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"imported {self.title!r} into {self.folder}"]
        for slug, kind, points, tests in self.exercises:
            what = f"{tests} test(s)" if kind == "function" else "graded by staff"
            lines.append(f"  {slug}: {kind}, {points:g} points, {what}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def plan_import(source: Path, fmt: str, slug: str, per_assert: bool = False) -> ImportPlan:
    if fmt not in FORMATS:
        raise AuthoringError(f"--format must be one of {FORMATS}, not {fmt!r}")
    if not SLUG.match(slug):
        raise AuthoringError(
            f"{slug!r} cannot be an assignment slug (letters, digits, '_', "
            "'-' and '.', starting with a letter or digit)"
        )
    nb = load_notebook(source)
    parser = nbgrader.parse if fmt == "nbgrader" else otter.parse
    plan = parser(nb, slug, per_assert)
    check_plan(plan)
    starter = notebook_text(plan.starter, plan.metadata)
    check_leaks(plan, [source_of(c) for c in plan.starter] + [starter])
    return plan


def verify(folder: Path) -> list[str]:
    """Warnings; AuthoringError if the folder does not load or a test fails on the solution."""
    try:
        loaded = load_assignment(folder)
    except (CourseError, GraderError, SyntaxError) as exc:
        raise AuthoringError(f"the imported folder does not load: {exc}") from exc
    except Exception as exc:  # the instructor's own code failed while it was imported
        raise AuthoringError(
            f"the notebook's code fails when the grader runs it: {type(exc).__name__}: {exc}"
        ) from exc
    program = program_of(loaded.reference)
    problems = reference_problems(program)
    if problems:
        raise AuthoringError(
            "the tests do not pass on the notebook's own solution:\n- " + "\n- ".join(problems)
        )
    return [
        f"`{name}` changes a tensor argument in place in the solution; imported tests "
        "give the student's code copies of their arguments, so a test cannot see that "
        "change (make it return its result)"
        for name in mutating_answers(program)
    ]


def import_notebook(
    source: Path, fmt: str, slug: str, out: Path, per_assert: bool = False, force: bool = False
) -> ImportReport:
    plan = plan_import(source, fmt, slug, per_assert)
    out = out.resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise AuthoringError(f"{out} exists and is not empty (--force replaces it)")
    staging = out.parent / f".{out.name}.import-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write_folder(plan, staging, slug, source.name)
        warnings = plan.warnings + verify(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = ImportReport(out, plan.title, warnings=warnings)
    report.exercises = [(e.slug, e.kind, e.points, len(e.tests)) for e in plan.exercises]
    report.warnings.append(
        "no buggy variants yet: add two per exercise to variants/ (see variants/README.txt)"
    )
    return report
