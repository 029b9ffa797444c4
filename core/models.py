"""SQLAlchemy models: the service's whole persistent state.

Both the API and the workers import these; migrations/ holds the matching schema.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from graders.outcome import TestOutcome


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            # Stored in UTC: SQLite keeps the wall time and drops the offset, so a
            # deadline given as 00:00+01:00 would otherwise read back an hour late.
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Course(Base):
    __tablename__ = "courses"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """Only the sha256 of a token is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    user: Mapped[User] = relationship()


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("course_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # student | ta | instructor
    # Pseudonym shown on leaderboards instead of the name.
    pseudonym: Mapped[str] = mapped_column(String(64), default="")
    user: Mapped[User] = relationship()
    course: Mapped[Course] = relationship()


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("course_id", "slug"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    # Hash of the assignment's folder: a job records which version graded it.
    version: Mapped[str] = mapped_column(String(64), default="")
    max_score: Mapped[float] = mapped_column(Float, default=0.0)
    # {"kind": "none"|"zero"|"percent_per_day", "percent_per_day": 10, "max_percent": 50}
    late_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    counting_policy: Mapped[str] = mapped_column(String(8), default="last")  # last | best
    cap_total: Mapped[int | None] = mapped_column(Integer, default=None)
    cap_per_day: Mapped[int | None] = mapped_column(Integer, default=None)
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    course: Mapped[Course] = relationship()
    exercises: Mapped[list[Exercise]] = relationship(
        back_populates="assignment", order_by="Exercise.position", cascade="all, delete-orphan"
    )


class Exercise(Base):
    __tablename__ = "exercises"
    __table_args__ = (UniqueConstraint("assignment_id", "slug"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # function | class | model
    max_score: Mapped[float] = mapped_column(Float)
    position: Mapped[int] = mapped_column(Integer, default=0)
    device: Mapped[str] = mapped_column(String(8), default="cpu")  # cpu | gpu
    assignment: Mapped[Assignment] = relationship(back_populates="exercises")


class Extension(Base):
    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("assignment_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column()


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    file_kind: Mapped[str] = mapped_column(String(16))  # notebook | python | safetensors | ...
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # Pointer to the job whose result is this submission's current score.
    current_job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    assignment: Mapped[Assignment] = relationship()
    user: Mapped[User] = relationship()


class RegradeBatch(Base):
    __tablename__ = "regrade_batches"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), default=None)
    exercise_slug: Mapped[str | None] = mapped_column(String(64), default=None)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    total: Mapped[int] = mapped_column(Integer, default=0)


class GradingJob(Base):
    """One attempt to grade one submission. Regrades add jobs; none is ever overwritten."""

    __tablename__ = "grading_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    submission_id: Mapped[str] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    queue: Mapped[str] = mapped_column(String(16), default="cpu")
    # Only these exercises are graded (regrade of one exercise); None means all.
    exercise_slugs: Mapped[list[Any] | None] = mapped_column(default=None)
    batch_id: Mapped[str | None] = mapped_column(
        ForeignKey("regrade_batches.id"), default=None, index=True
    )
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    reason: Mapped[str] = mapped_column(Text, default="submission")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Each claim by a worker increments attempt; results are written only by that claim.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker_host: Mapped[str | None] = mapped_column(String(255), default=None)
    device: Mapped[str | None] = mapped_column(String(128), default=None)
    isolation: Mapped[str | None] = mapped_column(String(255), default=None)
    grader_version: Mapped[str | None] = mapped_column(String(64), default=None)
    assignment_version: Mapped[str | None] = mapped_column(String(64), default=None)
    seeds: Mapped[list[Any] | None] = mapped_column(default=None)
    durations: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    raw_score: Mapped[float | None] = mapped_column(Float, default=None)
    max_score: Mapped[float | None] = mapped_column(Float, default=None)
    late_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    penalty_percent: Mapped[float | None] = mapped_column(Float, default=None)
    score: Mapped[float | None] = mapped_column(Float, default=None)
    # Why the service could not grade (never a student's fault).
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Notebook-level feedback: cells that failed to run, captured output.
    log: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    submission: Mapped[Submission] = relationship()
    results: Mapped[list[TestResult]] = relationship(
        back_populates="job", order_by="TestResult.position", cascade="all, delete-orphan"
    )


class TestResult(Base):
    __tablename__ = "test_results"
    # Covers the lookups by job, and lets the gradebook sum a job's points per exercise
    # from the index alone.
    __table_args__ = (Index("ix_test_results_job_exercise", "job_id", "exercise_slug", "score"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("grading_jobs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    exercise_slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    visibility: Mapped[str] = mapped_column(String(16), default="visible")
    feedback: Mapped[str] = mapped_column(Text, default="")
    job: Mapped[GradingJob] = relationship(back_populates="results")

    @staticmethod
    def columns_of(outcome: TestOutcome, job_id: str, position: int) -> dict[str, Any]:
        """The row of one test's outcome (graders.outcome), at `position` in its job, as
        the columns an INSERT takes."""
        return {
            "job_id": job_id,
            "position": position,
            "exercise_slug": outcome.exercise,
            "name": outcome.name,
            "outcome": outcome.outcome,
            "score": outcome.score,
            "max_score": outcome.max_score,
            "visibility": outcome.visibility,
            "feedback": outcome.feedback,
        }

    @staticmethod
    def outcome_of(row: Any) -> TestOutcome:
        """The outcome a row holds (a mapped TestResult or a selected row of the table):
        a partial regrade carries it into the new job."""
        return TestOutcome(
            row.exercise_slug,
            row.name,
            row.outcome,
            row.score,
            row.max_score,
            row.visibility,
            row.feedback,
        )


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_course_id", "course_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"), default=None)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Blob(Base):
    """A blob of the database backend (core/blob_backends.py): complete once this row is
    committed; its bytes are in blob_chunks, one row per CHUNK bytes."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    chunks: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BlobChunk(Base):
    __tablename__ = "blob_chunks"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class AssignmentVersion(Base):
    """One version of an assignment's folder, stored once as a bundle in the blob store.

    `version` is graders.course.folder_version of the folder (what Assignment.version
    and GradingJob.assignment_version hold); workers grade from the bundle it names.
    """

    __tablename__ = "assignment_versions"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64))
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerPresence(Base):
    """A running worker and the queues it consumes, refreshed by its heartbeat."""

    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    queues: Mapped[list[Any]] = mapped_column()
    slots: Mapped[int] = mapped_column(Integer, default=1)
    device: Mapped[str] = mapped_column(String(128), default="cpu")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# pytest would otherwise try to collect the model named TestResult.
TestResult.__test__ = False

# Manual grading's tables and publication requests (an uploaded assignment and its
# self-check) live in modules of their own; importing them here registers them on Base
# wherever the models are loaded (migrations, create_all, the API, the workers).
import core.publication_models  # noqa: E402, F401
import core.rubric_models  # noqa: E402, F401
