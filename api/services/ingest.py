"""The upload path, cut to what it must do: one lookup, one write transaction.

1. `find_target`, before the body is read: the token, the course, the caller's role in
   it, the assignment with its exercises and the caller's own deadline, in one query
   on an autocommit connection (no BEGIN/ROLLBACK around it). A caller who may not
   upload is answered 401/403/404 before a byte of the body is read.
2. `accept`, once the body has arrived (api/multipart.py, no connection held): the
   file is read by intake, then in one transaction: the caps (a student's enrollment
   row locked, then the counting query: two uploads at a cap's edge cannot both pass),
   the blob (in the same transaction with the database blob store, so it is committed
   with the rows that point at it; written and fsynced first with the other stores),
   the submission and job rows, the commit; only then is the task sent (core/jobs.py).

Failed jobs are refunded: a submission counts against a cap while any of its jobs has
not failed (the service's failures are never the student's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Connection, Executable, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.schemas import SubmissionCreated
from api.services.access import user_for
from core import capacity, policy
from core.accounts import STAFF_ROLES, hash_token
from core.blob_backends import DatabaseBlobStore
from core.blobs import Blobs, get_blob_store
from core.db import get_engine, get_sessionmaker, table
from core.errors import Forbidden, NotFound, NotSignedIn, OverCap, Unreadable
from core.jobs import dispatch_sent
from core.models import (
    ApiToken,
    Assignment,
    Course,
    Enrollment,
    Exercise,
    Extension,
    GradingJob,
    Submission,
    User,
    new_id,
    utcnow,
)
from graders.intake import exercise_kinds_for

MAX_SLUG = 64
MAX_TOKEN = 512


@dataclass(frozen=True)
class UploadTarget:
    """Who uploads to what: everything the upload needs, read once."""

    user_id: int
    role: str
    course_id: int
    course_slug: str
    assignment_id: int
    assignment_slug: str
    version: str
    #: The caller's own deadline: their extension, else the assignment's.
    due_at: datetime | None
    #: (kind, device) of each exercise.
    exercises: tuple[tuple[str, str], ...]

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def wants_gpu(self) -> bool:
        return any(device == "gpu" for _, device in self.exercises)


@lru_cache
def _lookup(by_token: bool) -> Executable:
    """The one query of `find_target`, built once (SQLAlchemy caches its compiled form):
    by the sha256 of a token, or by a user id (the pages, whose cookie was checked)."""
    who = ApiToken.user_id if by_token else User.id
    query = (
        select(
            who,
            Course.id,
            Enrollment.role,
            Assignment.id,
            Assignment.slug,
            Assignment.version,
            Assignment.due_at,
            Extension.due_at,
            Exercise.kind,
            Exercise.device,
        )
        .select_from(ApiToken if by_token else User)
        .outerjoin(Course, Course.slug == bindparam("course"))
        .outerjoin(Enrollment, (Enrollment.course_id == Course.id) & (Enrollment.user_id == who))
        .outerjoin(
            Assignment,
            (Assignment.course_id == Course.id) & (Assignment.slug == bindparam("assignment")),
        )
        .outerjoin(
            Extension, (Extension.assignment_id == Assignment.id) & (Extension.user_id == who)
        )
        .outerjoin(Exercise, Exercise.assignment_id == Assignment.id)
        .order_by(Exercise.position)
    )
    if by_token:
        return query.where(ApiToken.token_hash == bindparam("who"), ApiToken.revoked_at.is_(None))
    return query.where(User.id == bindparam("who"))


def find_target(
    token: str | None,
    course: str,
    assignment: str,
    where: str = "header",
    user_id: int | None = None,
) -> UploadTarget:
    """The caller (by token, or by `user_id` when given) and what they upload to, or the
    refusal, in the order the other routes give them: 401, 404 course, 403 not
    enrolled, 404 assignment."""
    if user_id is None and (not token or len(token) > MAX_TOKEN):
        user_for(None, token, where)  # type: ignore[arg-type]  # raises, without a query
    params = {
        "who": hash_token(token or "") if user_id is None else user_id,
        "course": course[: MAX_SLUG + 1],
        "assignment": assignment[: MAX_SLUG + 1],
    }
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        rows = conn.execute(_lookup(user_id is None), params).all()
    if not rows:
        raise NotSignedIn("The token is not valid (unknown or revoked).")
    (found_user, course_id, role, assignment_id, slug, version, due_at, extended, _, _) = rows[0]
    if course_id is None or len(course) > MAX_SLUG:
        raise NotFound(f"There is no course {course[:MAX_SLUG]!r}.")
    if role is None:
        raise Forbidden(f"You are not enrolled in the course {course!r}.")
    if assignment_id is None or len(assignment) > MAX_SLUG:
        raise NotFound(f"There is no assignment {assignment[:MAX_SLUG]!r} in course {course!r}.")
    return UploadTarget(
        user_id=int(found_user),
        role=str(role),
        course_id=int(course_id),
        course_slug=course,
        assignment_id=int(assignment_id),
        assignment_slug=str(slug),
        version=str(version or ""),
        due_at=extended or due_at,
        exercises=tuple((str(kind), str(device)) for *_, kind, device in rows if kind is not None),
    )


# -- the caps ---------------------------------------------------------------------------
# The statements of the write transaction are built once, with bind parameters: most of
# an upload's CPU went to building SQLAlchemy statements and to the ORM session.


@lru_cache
def _caps_query(lock_row: bool) -> Executable:
    enrollments, assignments = table(Enrollment), table(Assignment)
    query = (
        select(assignments.c.cap_total, assignments.c.cap_per_day)
        .select_from(enrollments)
        .join(assignments, assignments.c.id == bindparam("assignment_id"))
        .where(
            enrollments.c.course_id == bindparam("enrolled_in"),
            enrollments.c.user_id == bindparam("enrolled_user"),
        )
    )
    return query.with_for_update(of=enrollments) if lock_row else query


@lru_cache
def _write_lock() -> Executable:
    enrollments = table(Enrollment)
    return (
        update(enrollments)
        .where(
            enrollments.c.course_id == bindparam("enrolled_in"),
            enrollments.c.user_id == bindparam("enrolled_user"),
        )
        .values(role=enrollments.c.role)
    )


@lru_cache
def _count_query() -> Executable:
    submissions, jobs = table(Submission), table(GradingJob)
    not_failed = exists().where(jobs.c.submission_id == submissions.c.id, jobs.c.status != "failed")
    return select(
        func.count(), func.count().filter(submissions.c.submitted_at >= bindparam("since"))
    ).where(
        submissions.c.assignment_id == bindparam("assignment_id"),
        submissions.c.user_id == bindparam("user_id"),
        not_failed,
    )


def lock_caps(conn: Connection, target: UploadTarget) -> tuple[int | None, int | None]:
    """Lock the student's enrollment row for the rest of the transaction and read the
    assignment's caps afresh (they may have changed while the body arrived).

    The lock is what makes the count exact: a second upload of the same student waits
    here until the first one's rows are committed (or rolled back), and its count
    (a new statement, so a new snapshot) then sees them. PostgreSQL: SELECT ... FOR
    UPDATE. SQLite has no row locks: a no-op UPDATE takes the database's write lock
    at the start of the transaction (a transaction that read first could not upgrade).
    """
    params = {
        "assignment_id": target.assignment_id,
        "enrolled_in": target.course_id,
        "enrolled_user": target.user_id,
    }
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.execute(_write_lock(), params)
    row = conn.execute(_caps_query(not sqlite), params).first()
    if row is None:
        raise Forbidden(f"You are not enrolled in the course {target.course_slug!r}.")
    return row[0], row[1]


def counted(conn: Connection, target: UploadTarget, since: datetime) -> tuple[int, int]:
    """(all, since `since`): the student's submissions that count against a cap, those
    the service did not fail to grade, in one query."""
    row = conn.execute(
        _count_query(),
        {"since": since, "user_id": target.user_id, "assignment_id": target.assignment_id},
    ).one()
    return int(row[0]), int(row[1])


def check_caps(conn: Connection, target: UploadTarget) -> None:
    cap_total, cap_per_day = lock_caps(conn, target)
    if cap_total is None and cap_per_day is None:
        return
    total, last_day = counted(conn, target, utcnow() - timedelta(days=1))
    if cap_total is not None and total >= cap_total:
        raise OverCap(
            f"You have used all {cap_total} submissions allowed for {target.assignment_slug}."
        )
    if cap_per_day is not None and last_day >= cap_per_day:
        raise OverCap(
            f"You have used all {cap_per_day} submissions allowed "
            f"for {target.assignment_slug} in 24 hours; try again later.",
            headers={"Retry-After": "3600"},
        )


# -- accepting --------------------------------------------------------------------------


def check_answers_something(target: UploadTarget, file_kind: str) -> None:
    """A file must answer at least one exercise: a model file for an assignment without
    model exercises (or a notebook for one with only those) is the wrong kind of file."""
    answered = exercise_kinds_for(file_kind)
    if target.exercises and not any(kind in answered for kind, _ in target.exercises):
        kinds = sorted({kind for kind, _ in target.exercises})
        raise Unreadable(
            f"A {file_kind} file answers none of the exercises of "
            f"{target.assignment_slug} (they are {', '.join(kinds)} exercises)."
        )


def _store_blob(conn: Connection, store: Blobs, data: bytes) -> str:
    """The blob, durable before (or, in the database, with) the rows that point at it."""
    if isinstance(store, DatabaseBlobStore) and store.engine is conn.engine:
        return store.put_bytes_in(conn, data)  # in this very transaction
    return store.put_bytes(data)  # a file or an object, fsynced/complete before the rows


def _queue(target: UploadTarget) -> str:
    if not target.wants_gpu:
        return "cpu"
    with get_sessionmaker()() as session:  # the GPU queue only while a GPU worker lives
        return capacity.route(session, True)


def accept(
    conn: Connection,
    target: UploadTarget,
    name: str,
    kind: str,
    data: bytes,
    idempotency_key: str | None,
) -> tuple[SubmissionCreated, str, str]:
    """Check the caps and write the rows in the transaction of `conn` (the caller
    commits). Returns the answer and the (job id, queue) to send; IntegrityError on a
    racing Idempotency-Key (the caller looks the winner up)."""
    queue = _queue(target)
    if not target.is_staff:  # staff try assignments out; caps are for students
        check_caps(conn, target)
    sha = _store_blob(conn, get_blob_store(), data)
    submitted_at = utcnow()
    submission_id, job_id = new_id(), new_id()
    conn.execute(
        _insert_submission(),
        {
            "id": submission_id,
            "assignment_id": target.assignment_id,
            "user_id": target.user_id,
            "sha256": sha,
            "filename": name,
            "file_kind": kind,
            "size_bytes": len(data),
            "submitted_at": submitted_at,
            "idempotency_key": idempotency_key,
        },
    )
    conn.execute(
        _insert_job(),
        {
            "id": job_id,
            "submission_id": submission_id,
            "queue": queue,
            "status": "queued",
            "assignment_version": target.version or None,
            "reason": "submission",
            "created_at": submitted_at,
            "attempt": 0,
        },
    )
    # The answer is built before the commit: once the rows are committed nothing may
    # fail the request (the student would retry and submit twice).
    created = SubmissionCreated(
        id=submission_id,
        status="queued",
        assignment=target.assignment_slug,
        submitted_at=submitted_at,
        file_kind=kind,
        sha256=sha,
        late=policy.late_seconds(submitted_at, target.due_at) > 0,
    )
    return created, job_id, queue


@lru_cache
def _insert_submission() -> Executable:
    return insert(table(Submission))


@lru_cache
def _insert_job() -> Executable:
    return insert(table(GradingJob))


def accept_upload(
    target: UploadTarget, name: str, kind: str, data: bytes, idempotency_key: str | None
) -> SubmissionCreated | None:
    """`accept` in a transaction of its own, committed, then the task sent. None: a
    request with the same Idempotency-Key won a race (the caller answers with that
    one's submission)."""
    with get_engine().connect() as conn:
        try:
            with conn.begin():
                created, job_id, queue = accept(conn, target, name, kind, data, idempotency_key)
        except IntegrityError:
            if idempotency_key is None:
                raise
            return None
        dispatch_sent(conn, job_id, queue)  # never raises; the sweeper sends the rest
    return created
