"""Accepting an upload: durable before the student hears 202.

Order matters: the file is read by intake (graders/intake.py, the worker's own reading)
and the caps are checked before anything is written; then the blob is written and
fsynced, the submission and job rows are committed, and only then is the task sent. If
the broker is down the upload still succeeds; the sweeper sends the job when the broker
is back. A refused upload leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.schemas import SubmissionCreated
from api.services.access import Membership, course_member, get_assignment
from core import policy
from core.blobs import get_blob_store
from core.db import get_sessionmaker
from core.errors import OverCap, TooLarge, Unreadable
from core.jobs import create_job, dispatch
from core.models import Assignment, GradingJob, Submission, User, utcnow
from core.settings import get_settings
from graders.intake import (
    API_LIMITS,
    IntakeError,
    IntakeTooLarge,
    Limits,
    clean_filename,
    detect_kind,
    exercise_kinds_for,
)

MAX_KEY = 200


def api_limits() -> Limits:
    """The intake limits of the API: graders.intake's, with the configured byte limit."""
    return replace(API_LIMITS, max_bytes=get_settings().max_upload_bytes)


def created_view(db: Session, submission: Submission, status: str) -> SubmissionCreated:
    due = policy.effective_due(db, submission.assignment, submission.user_id)
    return SubmissionCreated(
        id=submission.id, status=status, assignment=submission.assignment.slug,
        submitted_at=submission.submitted_at, file_kind=submission.file_kind,
        sha256=submission.sha256,
        late=policy.late_seconds(submission.submitted_at, due) > 0,
    )


def _existing(db: Session, user_id: int, key: str) -> Submission | None:
    return db.scalar(select(Submission).where(Submission.user_id == user_id,
                                              Submission.idempotency_key == key))


def counted_submissions(db: Session, assignment: Assignment, user_id: int,
                        since: object | None = None) -> int:
    """Submissions that count against a cap: those the service did not fail to grade."""
    not_failed = exists().where(GradingJob.submission_id == Submission.id,
                                GradingJob.status != "failed")
    query = select(func.count()).select_from(Submission).where(
        Submission.assignment_id == assignment.id, Submission.user_id == user_id, not_failed)
    if since is not None:
        query = query.where(Submission.submitted_at >= since)
    return int(db.scalar(query) or 0)


def check_caps(db: Session, assignment: Assignment, user_id: int) -> None:
    if assignment.cap_total is not None:
        used = counted_submissions(db, assignment, user_id)
        if used >= assignment.cap_total:
            raise OverCap(f"You have used all {assignment.cap_total} submissions allowed "
                          f"for {assignment.slug}.")
    if assignment.cap_per_day is not None:
        used = counted_submissions(db, assignment, user_id, utcnow() - timedelta(days=1))
        if used >= assignment.cap_per_day:
            raise OverCap(f"You have used all {assignment.cap_per_day} submissions allowed "
                          f"for {assignment.slug} in 24 hours; try again later.",
                          headers={"Retry-After": "3600"})


def check_idempotency_key(key: str | None) -> None:
    if key is not None and (not key.strip() or len(key) > MAX_KEY
                            or not key.isprintable()):
        raise Unreadable(f"The Idempotency-Key header must be 1 to {MAX_KEY} printable "
                         "characters.")


def read_upload(filename: str | None, data: bytes) -> tuple[str, str]:
    """The cleaned file name and the kind of file, or the intake's refusal."""
    try:
        name = clean_filename(filename)
        return name, detect_kind(name, data, api_limits())
    except IntakeTooLarge as exc:
        raise TooLarge(str(exc)) from None
    except IntakeError as exc:
        raise Unreadable(str(exc)) from None


def check_answers_something(assignment: Assignment, file_kind: str) -> None:
    """A file must answer at least one exercise: a model file for an assignment without
    model exercises (or a notebook for one with only those) is the wrong kind of file."""
    answered = exercise_kinds_for(file_kind)
    if assignment.exercises and not any(e.kind in answered for e in assignment.exercises):
        kinds = sorted({e.kind for e in assignment.exercises})
        raise Unreadable(f"A {file_kind} file answers none of the exercises of "
                         f"{assignment.slug} (they are {', '.join(kinds)} exercises).")


def accept_upload(db: Session, member: Membership, assignment: Assignment,
                  filename: str | None, data: bytes,
                  idempotency_key: str | None) -> SubmissionCreated:
    user = member.user
    check_idempotency_key(idempotency_key)
    if idempotency_key is not None:
        found = _existing(db, user.id, idempotency_key)
        if found is not None:
            return created_view(db, found, _status(db, found))
    name, kind = read_upload(filename, data)
    check_answers_something(assignment, kind)
    if not member.is_staff:  # staff try assignments out; caps are for students
        check_caps(db, assignment, user.id)
    store = get_blob_store()
    sha = store.put_bytes(data)  # fsynced before the rows that point at it
    submission = Submission(
        assignment_id=assignment.id, user_id=user.id, sha256=sha, filename=name,
        file_kind=kind, size_bytes=len(data), idempotency_key=idempotency_key,
    )
    db.add(submission)
    try:
        db.flush()
        job = create_job(db, submission)
        # The answer is built before the commit: once the rows are committed nothing
        # may fail the request (the student would retry and submit twice).
        created = created_view(db, submission, "queued")
        db.commit()
    except IntegrityError:
        # Two requests with the same Idempotency-Key raced: the first one wins.
        db.rollback()
        found = _existing(db, user.id, idempotency_key or "")
        if found is None:
            raise
        return created_view(db, found, _status(db, found))
    dispatch(db, [job])  # never raises; the sweeper sends what could not be sent
    return created


def accept_for(user_id: int, course: str, assignment: str, filename: str | None,
               data: bytes, idempotency_key: str | None) -> SubmissionCreated:
    """accept_upload in a session of its own, the caller found again by id (the upload's
    body was received without holding a database connection)."""
    with get_sessionmaker()() as db:
        user = db.get(User, user_id)
        assert user is not None
        member = course_member(db, user, course)
        target = get_assignment(db, member.course, assignment)
        return accept_upload(db, member, target, filename, data, idempotency_key)


def _status(db: Session, submission: Submission) -> str:
    from api.services.presenters import shown_status

    return shown_status(db, submission)
