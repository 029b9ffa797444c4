"""Accepting an upload: durable before the student hears 202.

Order matters: the blob is written and fsynced, then the submission and job rows
are committed, and only then is the task sent. If the broker is down the upload still
succeeds; the sweeper sends the job when the broker is back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import BinaryIO

from fastapi import HTTPException
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import Membership
from api.schemas import SubmissionCreated
from core import policy
from core.blobs import BlobStore, BlobTooLarge
from core.jobs import create_job, dispatch
from core.models import Assignment, GradingJob, Submission, utcnow
from core.settings import get_settings
from graders.intake import IntakeError, detect_kind

MAX_FILENAME = 255


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
            raise HTTPException(429, f"You have used all {assignment.cap_total} submissions "
                                     f"allowed for {assignment.slug}.")
    if assignment.cap_per_day is not None:
        used = counted_submissions(db, assignment, user_id, utcnow() - timedelta(days=1))
        if used >= assignment.cap_per_day:
            raise HTTPException(
                429, f"You have used all {assignment.cap_per_day} submissions allowed for "
                     f"{assignment.slug} in 24 hours; try again later.",
                headers={"Retry-After": "3600"},
            )


def accept_upload(
    db: Session,
    member: Membership,
    assignment: Assignment,
    filename: str,
    stream: BinaryIO,
    idempotency_key: str | None,
) -> SubmissionCreated:
    settings = get_settings()
    user = member.user
    if idempotency_key is not None:
        if not idempotency_key.strip() or len(idempotency_key) > 200:
            raise HTTPException(422, "The Idempotency-Key header must be 1 to 200 characters.")
        found = _existing(db, user.id, idempotency_key)
        if found is not None:
            return created_view(db, found, _status(db, found))
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1][:MAX_FILENAME]
    if not name:
        raise HTTPException(422, "The uploaded file has no name; name it e.g. homework.ipynb.")
    store = BlobStore(settings.resolved_blob_dir)
    try:
        tmp, sha, size = store.spool(stream, settings.max_upload_bytes)
    except BlobTooLarge as exc:
        raise HTTPException(413, f"The file is too large: the limit is "
                                 f"{exc.limit // (1024 * 1024)} MB.") from exc
    try:
        data = tmp.read_bytes()
        try:
            kind = detect_kind(name, data)
        except IntakeError as exc:
            raise HTTPException(422, str(exc)) from exc
        if not member.is_staff:  # staff try assignments out; caps are for students
            check_caps(db, assignment, user.id)
        store.adopt(tmp, sha)
    finally:
        tmp.unlink(missing_ok=True)

    submission = Submission(
        assignment_id=assignment.id, user_id=user.id, sha256=sha, filename=name,
        file_kind=kind, size_bytes=size, idempotency_key=idempotency_key,
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


def _status(db: Session, submission: Submission) -> str:
    from api.services.views import shown_status

    return shown_status(db, submission)
