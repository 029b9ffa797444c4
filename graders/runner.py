"""Grading one submission: a pipeline of small steps.

intake (file -> cells) -> session (sandbox + cells run) -> per exercise: required
names present? -> per test: verdict or student error -> report. Knows nothing of
HTTP, Celery or the database: the worker stores the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from graders.compare import Verdict
from graders.course import LoadedAssignment
from graders.dsl import ExerciseSpec, GraderError, TestCase
from graders.intake import CODE_KINDS, MODEL_KINDS, read_cells
from graders.sandbox_api import SandboxFactory
from graders.student import CellReport, Student, StudentError, SubmissionSession

GRADER_VERSION = "0.1.0"
HIDDEN_ERROR_CHARS = 600


@dataclass
class TestOutcome:
    exercise: str
    name: str
    outcome: str  # passed | failed | error | timeout | oom | crashed
    score: float
    max_score: float
    visibility: str
    feedback: str
    seconds: float = 0.0


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
        return {
            "cells": [c.__dict__ for c in self.cells if c.status != "ok"],
            "output": self.output,
            "restarts": self.restarts,
        }


@dataclass(frozen=True)
class GradeLimits:
    cell_timeout: float = 30.0
    call_timeout: float = 10.0
    job_timeout: float = 300.0


def exercises_for(loaded: LoadedAssignment, file_kind: str,
                  only: list[str] | None = None) -> list[ExerciseSpec]:
    """A notebook or .py answers function and class exercises; a model file, model ones."""
    wanted = []
    for spec in loaded.exercises.values():
        if only is not None and spec.slug not in only:
            continue
        if file_kind in CODE_KINDS and spec.kind in ("function", "class"):
            wanted.append(spec)
        elif file_kind in MODEL_KINDS and spec.kind == "model":
            wanted.append(spec)
    return wanted


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
    cells = read_cells(file_kind, data) if file_kind in CODE_KINDS else []
    session = SubmissionSession(
        factory, cells, cell_timeout=limits.cell_timeout,
        deadline=time.monotonic() + limits.job_timeout,
    )
    student = Student(session, call_timeout=limits.call_timeout)
    student.model_path = model_path  # type: ignore[attr-defined]
    student.model_format = file_kind  # type: ignore[attr-defined]
    student.options = loaded.meta.options  # type: ignore[attr-defined]
    try:
        names, load_error = _load(session, file_kind)
        report.durations["load"] = round(session.load_seconds, 4)
        for spec in exercises:
            ex_started = time.perf_counter()
            student.call_timeout = spec.timeout or limits.call_timeout
            report.tests += run_exercise(spec, student, names, load_error, session.cell_reports)
            report.durations[spec.slug] = round(time.perf_counter() - ex_started, 4)
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


def run_exercise(
    spec: ExerciseSpec,
    student: Student,
    names: set[str],
    load_error: StudentError | None,
    cells: list[CellReport],
) -> list[TestOutcome]:
    blocker = _blocker(spec, names, load_error, cells)
    outcomes: list[TestOutcome] = []
    stopped: StudentError | None = None
    for test in spec.tests:
        if blocker is not None:
            outcomes.append(_outcome(spec, test, blocker[0], blocker[1]))
            continue
        if stopped is not None:
            outcomes.append(_outcome(
                spec, test, stopped.outcome,
                f"not run: an earlier test of {spec.slug} ended with {stopped.outcome}",
            ))
            continue
        started = time.perf_counter()
        try:
            verdict = test.verdict(student)
        except StudentError as exc:
            outcomes.append(_outcome(spec, test, exc.outcome, _error_text(exc, test)))
            outcomes[-1].seconds = time.perf_counter() - started
            if exc.outcome == "timeout":
                stopped = exc  # one infinite loop costs this exercise, not the whole job
            continue
        except GraderError:
            raise
        except Exception as exc:  # a check tripped over a malformed answer
            verdict = Verdict(False, f"the answer could not be checked ({type(exc).__name__}: "
                                     f"{str(exc)[:300]})")
        outcomes.append(_verdict_outcome(spec, test, verdict))
        outcomes[-1].seconds = time.perf_counter() - started
    return outcomes


def _blocker(
    spec: ExerciseSpec, names: set[str], load_error: StudentError | None, cells: list[CellReport]
) -> tuple[str, str] | None:
    if load_error is not None:
        return load_error.outcome, f"the submission could not be loaded: {load_error.message}"
    missing = [n for n in spec.requires if n not in names]
    if not missing:
        return None
    text = ", ".join(f"`{n}`" for n in missing)
    message = f"{text} {'is' if len(missing) == 1 else 'are'} not defined in your submission."
    broken = [c for c in cells if c.status != "ok"]
    if broken:
        message += " Cells that did not run completely: " + "; ".join(
            f"cell {c.index}: {c.message.strip().splitlines()[-1] if c.message else c.status}"
            for c in broken[:5]
        )
    return "failed", message


def _error_text(exc: StudentError, test: TestCase) -> str:
    text = exc.message.strip()
    if test.visibility == "hidden" and len(text) > HIDDEN_ERROR_CHARS:
        text = "..." + text[-HIDDEN_ERROR_CHARS:]
    return text


def _outcome(spec: ExerciseSpec, test: TestCase, outcome: str, feedback: str) -> TestOutcome:
    return TestOutcome(spec.slug, test.name, outcome, 0.0, test.points, test.visibility, feedback)


def _verdict_outcome(spec: ExerciseSpec, test: TestCase, verdict: Verdict) -> TestOutcome:
    score = round(test.points * verdict.earned_fraction, 6)
    outcome = "passed" if verdict.passed else "failed"
    feedback = verdict.message
    if not verdict.passed and test.visibility in ("visible", "after_due") and verdict.detail:
        feedback = f"{feedback}\n{verdict.detail}".strip()
    return TestOutcome(spec.slug, test.name, outcome, score, test.points, test.visibility,
                       feedback)
