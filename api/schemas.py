"""Response and request bodies (the JSON of docs/API.md, plus a few extra fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas_manual import ManualFeedbackOut


class ErrorOut(BaseModel):
    """Every error answer: a plain sentence saying what is wrong."""

    detail: str


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
    #: Manual exercises only: the grader's adjustment and comment, or why not shown.
    manual: ManualFeedbackOut | None = None


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
    #: Grade with this version of the assignment (one it has had); default: the current.
    version: str | None = Field(default=None, max_length=64)


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


class HistoryEntry(BaseModel):
    job_id: str
    created_at: datetime
    finished_at: datetime | None
    status: str
    reason: str
    requested_by: str | None
    batch_id: str | None
    exercises: list[str] | None
    score_before: float | None
    score_after: float | None
    raw_score: float | None
    penalty_percent: float | None
    late_seconds: float | None
    current: bool


# -- leaderboards ---------------------------------------------------------------------


class LeaderboardRow(BaseModel):
    rank: int
    name: str
    score: float
    public_score: float | None = None
    private_score: float | None = None
    submitted_at: datetime
    submission_id: str | None = None
    you: bool = False


class Leaderboard(BaseModel):
    exercise: str
    max_score: float
    ranked_by: str  # score | public | private
    rows: list[LeaderboardRow]


# -- running a course -------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2027-01-15T23:59:00+00:00 or ...Z")
    return value


class LatePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["none", "zero", "percent_per_day"]
    percent_per_day: float | None = Field(default=None, ge=0, le=100)
    max_percent: float | None = Field(default=None, ge=0, le=100)


class AssignmentPatch(BaseModel):
    """Only the fields sent change; null removes a deadline or a cap."""

    model_config = ConfigDict(extra="forbid")
    due_at: datetime | None = None
    late_policy: LatePolicy | None = None
    counting_policy: Literal["last", "best"] | None = None
    cap_total: int | None = Field(default=None, ge=0, le=1_000_000)
    cap_per_day: int | None = Field(default=None, ge=0, le=1_000_000)
    released: bool | None = None
    #: Regrade every submission afterwards, so stored penalties follow a new deadline.
    regrade: bool = False

    _tz = field_validator("due_at")(_aware)


class AssignmentSettings(BaseModel):
    slug: str
    title: str
    due_at: datetime | None
    your_due_at: datetime | None
    late_policy: dict[str, Any]
    counting_policy: str
    cap_total: int | None
    cap_per_day: int | None
    released: bool
    released_at: datetime | None
    max_score: float
    exercises: list[ExerciseOut]
    #: The regrade batch started by this change (regrade: true).
    batch_id: str | None = None


class ExtensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    due_at: datetime
    #: Regrade the student's submissions, so their stored penalties follow the extension.
    regrade: bool = False

    _tz = field_validator("due_at")(_aware)


class ExtensionOut(BaseModel):
    student: str
    assignment: str
    due_at: datetime | None
    #: The assignment's own deadline, for comparison.
    assignment_due_at: datetime | None
    extended: bool
    batch_id: str | None = None


class RosterRowOut(BaseModel):
    id: str
    status: str
    role: str
    #: Only for users created by this import, shown this once.
    token: str | None = None


class RosterOut(BaseModel):
    course: str
    created: int
    updated: int
    unchanged: int
    rows: list[RosterRowOut]


class MemberOut(BaseModel):
    name: str
    full_name: str
    email: str
    role: str


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Revoke the user's other tokens first (a lost or leaked token).
    revoke_existing: bool = False


class TokenOut(BaseModel):
    user: str
    token: str | None = None
    revoked: int = 0


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    action: str
    target: str
    details: dict[str, Any]
