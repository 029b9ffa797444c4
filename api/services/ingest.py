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

from sqlalchemy import Executable, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.schemas import SubmissionCreated
from api.services.access import user_for
from core import capacity, policy
from core.accounts import STAFF_ROLES, hash_token
from core.blob_backends import DatabaseBlobStore
from core.blobs import Blobs, get_blob_store
from core.db import get_engine, get_sessionmaker
from core.errors import Forbidden, NotFound, NotSignedIn, OverCap, Unreadable
from core.jobs import dispatch_ids
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
        select(who, Course.id, Enrollment.role, Assignment.id, Assignment.slug,
               Assignment.version, Assignment.due_at, Extension.due_at, Exercise.kind,
               Exercise.device)
        .select_from(ApiToken if by_token else User)
        .outerjoin(Course, Course.slug == bindparam("course"))
        .outerjoin(Enrollment, (Enrollment.course_id == Course.id) & (Enrollment.user_id == who))
        .outerjoin(Assignment, (Assignment.course_id == Course.id)
                   & (Assignment.slug == bindparam("assignment")))
        .outerjoin(Extension, (Extension.assignment_id == Assignment.id)
                   & (Extension.user_id == who))
        .outerjoin(Exercise, Exercise.assignment_id == Assignment.id)
        .order_by(Exercise.position)
    )
    if by_token:
        return query.where(ApiToken.token_hash == bindparam("who"),
                           ApiToken.revoked_at.is_(None))
    return query.where(User.id == bindparam("who"))


def find_target(token: str | None, course: str, assignment: str, where: str = "header",
                user_id: int | None = None) -> UploadTarget:
    """The caller (by token, or by `user_id` when given) and what they upload to, or the
    refusal, in the order the other routes give them: 401, 404 course, 403 not
    enrolled, 404 assignment."""
    if user_id is None and (not token or len(token) > MAX_TOKEN):
        user_for(None, token, where)  # type: ignore[arg-type]  # raises, without a query
    params = {"who": hash_token(token or "") if user_id is None else user_id,
              "course": course[:MAX_SLUG + 1], "assignment": assignment[:MAX_SLUG + 1]}
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        rows = conn.execute(_lookup(user_id is None), params).all()
    if not rows:
        raise NotSignedIn("The token is not valid (unknown or revoked).")
    (found_user, course_id, role, assignment_id, slug, version, due_at, extended,
     _, _) = rows[0]
    if course_id is None or len(course) > MAX_SLUG:
        raise NotFound(f"There is no course {course[:MAX_SLUG]!r}.")
    if role is None:
        raise Forbidden(f"You are not enrolled in the course {course!r}.")
    if assignment_id is None or len(assignment) > MAX_SLUG:
        raise NotFound(f"There is no assignment {assignment[:MAX_SLUG]!r} in course "
                       f"{course!r}.")
    return UploadTarget(
        user_id=int(found_user), role=str(role), course_id=int(course_id), course_slug=course,
        assignment_id=int(assignment_id), assignment_slug=str(slug),
        version=str(version or ""), due_at=extended or due_at,
        exercises=tuple((str(kind), str(device)) for *_, kind, device in rows
                        if kind is not None),
    )


# -- the caps ---------------------------------------------------------------------------

def lock_caps(db: Session, target: UploadTarget) -> tuple[int | None, int | None]:
    """Lock the student's enrollment row for the rest of the transaction and read the
    assignment's caps afresh (they may have changed while the body arrived).

    The lock is what makes the count exact: a second upload of the same student waits
    here until the first one's rows are committed (or rolled back), and its count
    (a new statement, so a new snapshot) then sees them. PostgreSQL: SELECT ... FOR
    UPDATE. SQLite has no row locks: a no-op UPDATE takes the database's write lock
    at the start of the transaction (a transaction that read first could not upgrade).
    """
    caps = (select(Assignment.cap_total, Assignment.cap_per_day)
            .select_from(Enrollment)
            .join(Assignment, Assignment.id == target.assignment_id)
            .where(Enrollment.course_id == target.course_id,
                   Enrollment.user_id == target.user_id))
    if db.get_bind().dialect.name == "sqlite":
        db.execute(update(Enrollment).where(Enrollment.course_id == target.course_id,
                                            Enrollment.user_id == target.user_id)
                   .values(role=Enrollment.role))
    else:
        caps = caps.with_for_update(of=Enrollment)
    row = db.execute(caps).first()
    if row is None:
        raise Forbidden(f"You are not enrolled in the course {target.course_slug!r}.")
    return row[0], row[1]


def counted(db: Session, target: UploadTarget, since: datetime) -> tuple[int, int]:
    """(all, since `since`): the student's submissions that count against a cap, those
    the service did not fail to grade, in one query."""
    not_failed = exists().where(GradingJob.submission_id == Submission.id,
                                GradingJob.status != "failed")
    row = db.execute(
        select(func.count(), func.count().filter(Submission.submitted_at >= since))
        .where(Submission.assignment_id == target.assignment_id,
               Submission.user_id == target.user_id, not_failed)).one()
    return int(row[0]), int(row[1])


def check_caps(db: Session, target: UploadTarget) -> None:
    cap_total, cap_per_day = lock_caps(db, target)
    if cap_total is None and cap_per_day is None:
        return
    total, last_day = counted(db, target, utcnow() - timedelta(days=1))
    if cap_total is not None and total >= cap_total:
        raise OverCap(f"You have used all {cap_total} submissions allowed "
                      f"for {target.assignment_slug}.")
    if cap_per_day is not None and last_day >= cap_per_day:
        raise OverCap(f"You have used all {cap_per_day} submissions allowed "
                      f"for {target.assignment_slug} in 24 hours; try again later.",
                      headers={"Retry-After": "3600"})


# -- accepting --------------------------------------------------------------------------

def check_answers_something(target: UploadTarget, file_kind: str) -> None:
    """A file must answer at least one exercise: a model file for an assignment without
    model exercises (or a notebook for one with only those) is the wrong kind of file."""
    answered = exercise_kinds_for(file_kind)
    if target.exercises and not any(kind in answered for kind, _ in target.exercises):
        kinds = sorted({kind for kind, _ in target.exercises})
        raise Unreadable(f"A {file_kind} file answers none of the exercises of "
                         f"{target.assignment_slug} (they are {', '.join(kinds)} exercises).")


def _store_blob(db: Session, store: Blobs, data: bytes) -> str:
    """The blob, durable before (or, in the database, with) the rows that point at it."""
    if isinstance(store, DatabaseBlobStore) and store.engine is get_engine():
        return store.put_bytes_in(db, data)  # in this very transaction
    return store.put_bytes(data)  # a file or an object, fsynced/complete before the rows


def accept(db: Session, target: UploadTarget, name: str, kind: str, data: bytes,
           idempotency_key: str | None) -> tuple[SubmissionCreated, str, str]:
    """Check the caps and write the rows in one transaction, committed here. Returns
    the answer and the (job id, queue) to send; IntegrityError on a racing
    Idempotency-Key (the caller looks the winner up)."""
    if not target.is_staff:  # staff try assignments out; caps are for students
        check_caps(db, target)
    sha = _store_blob(db, get_blob_store(), data)
    submitted_at = utcnow()
    submission_id, job_id = new_id(), new_id()
    queue = capacity.route(db, target.wants_gpu)
    db.execute(insert(Submission).values(
        id=submission_id, assignment_id=target.assignment_id, user_id=target.user_id,
        sha256=sha, filename=name, file_kind=kind, size_bytes=len(data),
        submitted_at=submitted_at, idempotency_key=idempotency_key))
    db.execute(insert(GradingJob).values(
        id=job_id, submission_id=submission_id, queue=queue, status="queued",
        assignment_version=target.version or None, reason="submission",
        created_at=submitted_at))
    # The answer is built before the commit: once the rows are committed nothing may
    # fail the request (the student would retry and submit twice).
    created = SubmissionCreated(
        id=submission_id, status="queued", assignment=target.assignment_slug,
        submitted_at=submitted_at, file_kind=kind, sha256=sha,
        late=policy.late_seconds(submitted_at, target.due_at) > 0)
    db.commit()
    return created, job_id, queue


def accept_upload(target: UploadTarget, name: str, kind: str, data: bytes,
                  idempotency_key: str | None) -> SubmissionCreated | None:
    """`accept` in a session of its own, then the task sent. None: a request with the
    same Idempotency-Key won a race (the caller answers with that one's submission)."""
    with get_sessionmaker()() as db:
        try:
            created, job_id, queue = accept(db, target, name, kind, data, idempotency_key)
        except IntegrityError:
            db.rollback()
            if idempotency_key is None:
                raise
            return None
        dispatch_ids(db, [(job_id, queue)])  # never raises; the sweeper sends the rest
        return created
