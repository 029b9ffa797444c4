"""Submitting, reading a submission, its live status, its jobs, and regrading it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.deps import DB, CurrentUser, Member
from api.errors import errors
from api.multipart import upload_body
from api.schemas import (
    HistoryEntry,
    JobOut,
    RegradeJobOut,
    RegradeRequest,
    SubmissionCreated,
    SubmissionOut,
)
from api.services import events
from api.services.access import bearer_token, get_assignment, require_staff, visible_submission
from api.services.ingest import find_target
from api.services.presenters import history_view, job_view, submission_view
from api.services.regrades import regrade_submission as start_regrade
from api.uploads import receive_upload
from core.models import GradingJob, Submission

router = APIRouter(prefix="/api/v1")
#: One server-sent event: `status` events carry {"id", "status", "score", "max_score"}.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
UPLOAD_BODY = upload_body()


@router.post(
    "/courses/{course}/assignments/{assignment}/submissions",
    status_code=202,
    response_model=SubmissionCreated,
    responses=errors(403, 404, 408, 413, 422, 429),
    openapi_extra=UPLOAD_BODY,
)
async def submit(
    request: Request,
    course: Annotated[str, Path(max_length=64)],
    assignment: str,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> SubmissionCreated:
    """Upload a notebook, a .py file or a model file (multipart field `file`)."""
    # One query finds the caller, the course, their role and the assignment; the body
    # may take a while to arrive, and no pooled connection is held meanwhile.
    target = await run_in_threadpool(find_target, bearer_token(authorization), course, assignment)
    return await receive_upload(request, target, idempotency_key)


@router.get("/submissions/{submission_id}", response_model=SubmissionOut, responses=errors(404))
def get_submission(db: DB, user: CurrentUser, submission_id: str) -> SubmissionOut:
    submission, member = visible_submission(db, user, submission_id)
    return submission_view(db, submission, viewer_is_staff=member.is_staff)


@router.get(
    "/courses/{course}/assignments/{assignment}/submissions",
    response_model=list[SubmissionOut],
    responses=errors(403, 404),
)
def list_submissions(db: DB, member: Member, assignment: str) -> list[SubmissionOut]:
    """The caller's own submissions (staff: everyone's), newest first."""
    target = get_assignment(db, member.course, assignment)
    query = select(Submission).where(Submission.assignment_id == target.id)
    if not member.is_staff:
        query = query.where(Submission.user_id == member.user.id)
    rows = db.scalars(query.order_by(Submission.submitted_at.desc()).limit(500)).all()
    return [submission_view(db, s, viewer_is_staff=member.is_staff) for s in rows]


@router.get(
    "/submissions/{submission_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
            "description": "Status changes, ending after the final one.",
        },
        **errors(404),
    },
)
async def submission_events(
    request: Request,
    submission_id: str,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> StreamingResponse:
    # One thread-pool hop with a session of its own: streams are not counted by the
    # in-flight limit, so a burst of them must never hold a connection while waiting
    # for a thread (the pool would run dry: 500s after its timeout).
    await run_in_threadpool(events.check_access, bearer_token(authorization), submission_id)
    return StreamingResponse(
        events.status_events(submission_id, request.is_disconnected),
        media_type="text/event-stream",
        headers=events.HEADERS,
    )


@router.get(
    "/submissions/{submission_id}/jobs", response_model=list[JobOut], responses=errors(403, 404)
)
def submission_jobs(db: DB, user: CurrentUser, submission_id: str) -> list[JobOut]:
    submission, member = visible_submission(db, user, submission_id)
    require_staff(member, "list grading jobs")
    jobs = db.scalars(
        select(GradingJob)
        .where(GradingJob.submission_id == submission.id)
        .order_by(GradingJob.created_at, GradingJob.id)
    ).all()
    return [job_view(db, j) for j in jobs]


@router.get(
    "/submissions/{submission_id}/history", response_model=list[HistoryEntry], responses=errors(404)
)
def submission_history(db: DB, user: CurrentUser, submission_id: str) -> list[HistoryEntry]:
    """Each grading job of the submission, oldest first: when, why, who asked, and the
    score before -> after. Staff of the course, and the submission's owner."""
    submission, _ = visible_submission(db, user, submission_id)
    return [HistoryEntry.model_validate(e) for e in history_view(db, submission)]


@router.post(
    "/submissions/{submission_id}/regrade",
    status_code=202,
    response_model=RegradeJobOut,
    responses=errors(403, 404),
)
def regrade_submission(
    db: DB, user: CurrentUser, submission_id: str, body: RegradeRequest | None = None
) -> RegradeJobOut:
    body = body or RegradeRequest()
    return start_regrade(db, user, submission_id, body.exercise, body.reason, body.version)
