"""Grading one submission: a pipeline of small steps.

intake (file -> cells) -> session (sandbox + cells run) -> per exercise: required
names present? -> per test: verdict or student error -> report. Knows nothing of
HTTP, Celery or the database: the worker stores the report.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass, field
from typing import Any

from graders.compare import Verdict
from graders.course import LoadedAssignment
from graders.dsl import ExerciseSpec, GraderError, TestCase
from graders.intake import CODE_KINDS, exercise_kinds_for, read_cells
from graders.intake_limits import IntakeError
from graders.outcome import TestOutcome
from graders.sandbox_api import SandboxFactory
from graders.student import CellReport, Student, StudentError, SubmissionSession
from protocol.messages import VALUE_TOO_LARGE
from protocol.text import clean, clean_tail

GRADER_VERSION = "0.2.0"
#: Characters of one test's feedback, and of a message repeated into every test.
FEEDBACK_CHARS = 4000
BLOCKER_CHARS = 1200
#: Cells listed in the job's log (those that did not run completely).
LOG_CELLS = 20
NAMED_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
) | {VALUE_TOO_LARGE}


@dataclass
class GradeReport:
    tests: list[TestOutcome] = field(default_factory=list)
    cells: list[CellReport] = field(default_factory=list)
    output: str = ""
    isolation: str = ""
    restarts: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    exercises: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 6)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.tests), 6)

    def exercise_score(self, slug: str) -> float:
        return round(sum(t.score for t in self.tests if t.exercise == slug), 6)

    def log(self) -> dict[str, Any]:
        broken = [c for c in self.cells if c.status != "ok"]
        return {
            "cells": [
                {"index": c.index, "status": c.status, "message": clean(c.message, 2000)}
                for c in broken[:LOG_CELLS]
            ],
            "cells_not_listed": max(0, len(broken) - LOG_CELLS),
            "output": self.output,
            "restarts": self.restarts,
        }


@dataclass(frozen=True)
class GradeLimits:
    cell_timeout: float = 30.0
    call_timeout: float = 10.0
    job_timeout: float = 300.0


def exercises_for(
    loaded: LoadedAssignment, file_kind: str, only: list[str] | None = None
) -> list[ExerciseSpec]:
    """The exercises a file of `file_kind` answers (graders.intake.exercise_kinds_for:
    code the function and class ones, a model file the model ones), of `only` if given."""
    kinds = exercise_kinds_for(file_kind)
    return [
        spec
        for spec in loaded.exercises.values()
        if spec.kind in kinds and (only is None or spec.slug in only)
    ]


def grade(
    loaded: LoadedAssignment,
    file_kind: str,
    data: bytes,
    factory: SandboxFactory,
    only: list[str] | None = None,
    limits: GradeLimits | None = None,
    model_path: str | None = None,
) -> GradeReport:
    limits = limits or GradeLimits()
    report = GradeReport()
    started = time.perf_counter()
    exercises = exercises_for(loaded, file_kind, only)
    report.exercises = [e.slug for e in exercises]
    try:
        cells = read_cells(file_kind, data) if file_kind in CODE_KINDS else []
    except IntakeError as exc:
        # The student's file, not the service, is at fault: graded, with a sentence.
        reason = clean(f"the submission could not be read: {exc}", BLOCKER_CHARS)
        report.tests = [
            _outcome(spec, test, "error", reason) for spec in exercises for test in spec.tests
        ]
        report.durations["total"] = round(time.perf_counter() - started, 4)
        return report
    session = SubmissionSession(
        factory,
        cells,
        cell_timeout=limits.cell_timeout,
        deadline=time.monotonic() + limits.job_timeout,
    )
    student = Student(
        session,
        call_timeout=limits.call_timeout,
        model_path=model_path,
        model_format=file_kind,
        options=loaded.meta.options,
    )
    try:
        names, load_error = _load(session, file_kind)
        report.durations["load"] = round(session.load_seconds, 4)
        runs = {
            spec.slug: ExerciseRun(spec, _blocker(spec, names, load_error, session.cell_reports))
            for spec in exercises
        }
        # Visible tests first, hidden ones last: whatever a hidden test's inputs leave
        # behind in the sandbox can then only reach feedback that hides them too.
        for visibility in VISIBILITY_ORDER:
            for spec in exercises:
                ex_started = time.perf_counter()
                student.call_timeout = spec.timeout or limits.call_timeout
                runs[spec.slug].run(student, visibility)
                report.durations[spec.slug] = round(
                    report.durations.get(spec.slug, 0.0) + time.perf_counter() - ex_started, 4
                )
        for spec in exercises:
            report.tests += runs[spec.slug].outcomes()
    finally:
        session.close()
    report.cells = session.cell_reports
    report.output = "".join(session.output)
    report.isolation = session.isolation
    report.restarts = session.restarts
    report.durations["total"] = round(time.perf_counter() - started, 4)
    return report


def _load(session: SubmissionSession, file_kind: str) -> tuple[set[str], StudentError | None]:
    try:
        session.ensure()
        if file_kind in CODE_KINDS:
            return session.defined_names(), None
        return set(), None
    except StudentError as exc:
        return set(), exc


VISIBILITY_ORDER = ("visible", "after_due", "hidden")


class ExerciseRun:
    """One exercise's tests, run in visibility phases, reported in their own order."""

    def __init__(self, spec: ExerciseSpec, blocker: tuple[str, str] | None) -> None:
        self.spec = spec
        self.blocker = blocker
        self.results: dict[int, TestOutcome] = {}
        #: A timeout stops the exercise: one infinite loop costs it, not the whole job.
        self.stopped: StudentError | None = None

    def run(self, student: Student, visibility: str) -> None:
        spec = self.spec
        for position, test in enumerate(spec.tests):
            if _phase(test.visibility) != visibility:
                continue
            if self.blocker is not None:
                self.results[position] = _outcome(spec, test, *self.blocker)
            elif self.stopped is not None:
                self.results[position] = _outcome(
                    spec,
                    test,
                    self.stopped.outcome,
                    f"not run: an earlier test of {spec.slug} ended with {self.stopped.outcome}",
                )
            else:
                self.results[position] = run_test(spec, test, student)
                if self.results[position].outcome == "timeout":
                    self.stopped = StudentError("timeout", "")

    def outcomes(self) -> list[TestOutcome]:
        return [self.results[i] for i in sorted(self.results)]


def _phase(visibility: str) -> str:
    return visibility if visibility in VISIBILITY_ORDER else "hidden"


def run_test(spec: ExerciseSpec, test: TestCase, student: Student) -> TestOutcome:
    started = time.perf_counter()
    try:
        verdict = test.verdict(student)
    except StudentError as exc:
        outcome = _outcome(spec, test, exc.outcome, _error_text(exc, test))
    except GraderError:
        raise
    except Exception as exc:  # a check tripped over a malformed answer
        outcome = _verdict_outcome(
            spec,
            test,
            Verdict(
                False, f"the answer could not be checked ({type(exc).__name__}: {clean(exc, 300)})"
            ),
        )
    else:
        outcome = _verdict_outcome(spec, test, verdict)
    outcome.seconds = time.perf_counter() - started
    return outcome


def run_exercise(
    spec: ExerciseSpec,
    student: Student,
    names: set[str],
    load_error: StudentError | None,
    cells: list[CellReport],
) -> list[TestOutcome]:
    """All tests of one exercise, visible ones first (used alone by the self-check)."""
    run = ExerciseRun(spec, _blocker(spec, names, load_error, cells))
    for visibility in VISIBILITY_ORDER:
        run.run(student, visibility)
    return run.outcomes()


def _blocker(
    spec: ExerciseSpec, names: set[str], load_error: StudentError | None, cells: list[CellReport]
) -> tuple[str, str] | None:
    if load_error is not None:
        return load_error.outcome, clean(
            f"the submission could not be loaded: {load_error.message}", BLOCKER_CHARS
        )
    missing = [n for n in spec.requires if n not in names]
    if not missing:
        return None
    text = ", ".join(f"`{n}`" for n in missing)
    message = f"{text} {'is' if len(missing) == 1 else 'are'} not defined in your submission."
    broken = [c for c in cells if c.status != "ok"]
    if broken:
        message += " Cells that did not run completely: " + "; ".join(
            f"cell {c.index}: {_last_line(c)}" for c in broken[:5]
        )
    # Repeated into every test of the exercise: kept short, whatever the cells said.
    return "failed", clean(message, BLOCKER_CHARS)


def _last_line(cell: CellReport) -> str:
    lines = cell.message.strip().splitlines()
    return clean(lines[-1], 200) if lines else cell.status


def _error_text(exc: StudentError, test: TestCase) -> str:
    """Feedback for a test the student's code failed to answer.

    A hidden test's feedback can be released to students, and the student's own
    exception text can hold the hidden inputs (the code under test chose it): for a
    hidden test only the exception's type is named, and only a builtin one.
    """
    if exc.failure is None or test.visibility in ("visible", "after_due"):
        return clean_tail(exc.message.strip(), FEEDBACK_CHARS)
    kind = exc.failure.type
    named = kind if kind in NAMED_EXCEPTIONS else "an exception of its own"
    return f"your code raised {named} on a hidden input (its message is not shown for hidden tests)"


def _outcome(spec: ExerciseSpec, test: TestCase, outcome: str, feedback: str) -> TestOutcome:
    return TestOutcome(spec.slug, test.name, outcome, 0.0, test.points, test.visibility, feedback)


def _verdict_outcome(spec: ExerciseSpec, test: TestCase, verdict: Verdict) -> TestOutcome:
    score = round(test.points * verdict.earned_fraction, 6)
    outcome = "passed" if verdict.passed else "failed"
    feedback = verdict.message
    if not verdict.passed and test.visibility in ("visible", "after_due") and verdict.detail:
        feedback = f"{feedback}\n{verdict.detail}".strip()
    return TestOutcome(
        spec.slug,
        test.name,
        outcome,
        score,
        test.points,
        test.visibility,
        clean(feedback, FEEDBACK_CHARS),
    )
