"""Accepting an upload: durable before the student hears 202.

Order matters: the file is read by intake (graders/intake.py, the worker's own reading)
before anything is written; then, in one transaction (api/services/ingest.py), the caps
are checked under a lock, the blob is stored (durable before, or committed with, the
rows that point at it), the submission and job rows are committed, and only then is
the task sent. If the broker is down the upload still succeeds; the sweeper sends the
job when the broker is back. A refused upload leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import SubmissionCreated
from api.services import ingest
from api.services.ingest import UploadTarget
from core import policy
from core.db import get_sessionmaker
from core.errors import TooLarge, Unreadable
from core.models import Submission
from core.settings import get_settings
from graders.intake import clean_filename, detect_kind
from graders.intake_limits import API_LIMITS, IntakeError, IntakeTooLarge, Limits

MAX_KEY = 200


def api_limits() -> Limits:
    """The intake limits of the API: graders.intake's, with the configured byte limit."""
    return replace(API_LIMITS, max_bytes=get_settings().max_upload_bytes)


def created_view(db: Session, submission: Submission, status: str) -> SubmissionCreated:
    due = policy.effective_due(db, submission.assignment, submission.user_id)
    return SubmissionCreated(
        id=submission.id,
        status=status,
        assignment=submission.assignment.slug,
        submitted_at=submission.submitted_at,
        file_kind=submission.file_kind,
        sha256=submission.sha256,
        late=policy.late_seconds(submission.submitted_at, due) > 0,
    )


def _existing(db: Session, user_id: int, key: str) -> Submission | None:
    return db.scalar(
        select(Submission).where(Submission.user_id == user_id, Submission.idempotency_key == key)
    )


def check_idempotency_key(key: str | None) -> None:
    if key is not None and (not key.strip() or len(key) > MAX_KEY or not key.isprintable()):
        raise Unreadable(f"The Idempotency-Key header must be 1 to {MAX_KEY} printable characters.")


def read_upload(filename: str | None, data: bytes) -> tuple[str, str]:
    """The cleaned file name and the kind of file, or the intake's refusal."""
    try:
        name = clean_filename(filename)
        return name, detect_kind(name, data, api_limits())
    except IntakeTooLarge as exc:
        raise TooLarge(str(exc)) from None
    except IntakeError as exc:
        raise Unreadable(str(exc)) from None


def accept_for(
    target: UploadTarget, filename: str | None, data: bytes, idempotency_key: str | None
) -> SubmissionCreated:
    """Accept a received upload for `target` (api/services/ingest.py: found once, before
    the body arrived, without holding a database connection while it did)."""
    check_idempotency_key(idempotency_key)
    if idempotency_key is not None:
        known = _answer_for_key(target.user_id, idempotency_key)
        if known is not None:
            return known
    name, kind = read_upload(filename, data)
    ingest.check_answers_something(target, kind)
    created = ingest.accept_upload(target, name, kind, data, idempotency_key)
    if created is None:  # two requests with the same Idempotency-Key raced: the first wins
        known = _answer_for_key(target.user_id, idempotency_key or "")
        assert known is not None
        return known
    return created


def _answer_for_key(user_id: int, key: str) -> SubmissionCreated | None:
    """The answer to a request whose Idempotency-Key was seen before, if it was."""
    with get_sessionmaker()() as db:
        found = _existing(db, user_id, key)
        return None if found is None else created_view(db, found, _status(db, found))


def _status(db: Session, submission: Submission) -> str:
    from api.services.presenters import shown_status

    return shown_status(db, submission)
