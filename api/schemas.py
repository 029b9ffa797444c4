"""Response and request bodies (the JSON of shared/API.md, plus a few extra fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ExerciseOut(BaseModel):
    slug: str
    max_score: float
    kind: str
    device: str = "cpu"


class AssignmentOut(BaseModel):
    slug: str
    title: str
    due_at: datetime | None
    max_score: float
    exercises: list[ExerciseOut]
    #: The caller's own deadline (extensions included).
    your_due_at: datetime | None = None
    released: bool = False


class SubmissionCreated(BaseModel):
    id: str
    status: str
    assignment: str
    submitted_at: datetime
    file_kind: str
    sha256: str
    late: bool


class TestOut(BaseModel):
    name: str
    outcome: str
    score: float
    max_score: float
    feedback: str
    visibility: str


class HiddenTests(BaseModel):
    count: int
    max_score: float
    score: float


class ExerciseResultOut(BaseModel):
    slug: str
    score: float | None
    max_score: float
    tests: list[TestOut]
    hidden_tests: HiddenTests | None = None


class SubmissionOut(BaseModel):
    id: str
    assignment: str
    course: str
    student: str
    status: str
    score: float | None
    max_score: float
    raw_score: float | None = None
    penalty_percent: float | None = None
    submitted_at: datetime
    late: bool
    late_seconds: float = 0.0
    file_kind: str
    filename: str
    job_id: str | None = None
    #: Why the service could not grade it (status failed); never a student's fault.
    error: str | None = None
    exercises: list[ExerciseResultOut]
    #: Notebook cells that failed to run (syntax errors, exceptions), and printed output.
    cells: list[dict[str, Any]] = Field(default_factory=list)
    output: str = ""
    #: Remarks of the grader about this job (e.g. a GPU exercise graded on the CPU).
    notes: list[str] = Field(default_factory=list)
    counts: bool | None = None


class JobOut(BaseModel):
    id: str
    status: str
    attempt: int
    reason: str
    queue: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    score: float | None
    raw_score: float | None
    max_score: float | None
    penalty_percent: float | None
    worker_host: str | None
    device: str | None
    isolation: str | None
    grader_version: str | None
    assignment_version: str | None
    seeds: list[Any] | None
    durations: dict[str, Any] | None
    error: str | None
    batch_id: str | None
    requested_by: str | None
    exercises: list[str] | None


class RegradeRequest(BaseModel):
    exercise: str | None = None
    reason: str = ""


class RegradeJobOut(BaseModel):
    job_id: str
    submission_id: str
    status: str


class BatchCreated(BaseModel):
    batch_id: str
    total: int
    status: str


class BatchOut(BaseModel):
    batch_id: str
    total: int
    done: int
    failed: int
    status: str
