"""Submitting, reading a submission, its live status, its jobs, and regrading it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import DB, CurrentUser, Member, Membership, get_assignment, membership
from api.schemas import JobOut, RegradeJobOut, RegradeRequest, SubmissionCreated, SubmissionOut
from api.services.submissions import accept_upload
from api.services.views import job_view, shown_status, submission_view
from core.db import get_sessionmaker
from core.jobs import FINAL_STATUSES, create_job, dispatch
from core.models import AuditEvent, GradingJob, Submission, User
from core.settings import get_settings

router = APIRouter(prefix="/api/v1")
MULTIPART_OVERHEAD = 64 * 1024


@router.post(
    "/courses/{course}/assignments/{assignment}/submissions",
    status_code=202,
    response_model=SubmissionCreated,
)
async def submit(
    request: Request,
    db: DB,
    member: Member,
    assignment: str,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> SubmissionCreated:
    target = await run_in_threadpool(get_assignment, db, member.course, assignment)
    limit = get_settings().max_upload_bytes
    declared = request.headers.get("content-length")
    # Refuse an oversized body before reading it: nothing of it is stored.
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise HTTPException(413, f"The file is too large: the limit is {limit // 2**20} MB.")
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=1024 * 1024)
    except Exception as exc:
        raise HTTPException(422, f"The request body is not a valid multipart form: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(
                422, "Send the file as a multipart form field named 'file' "
                     "(curl -F file=@homework.ipynb ...).")
        return await run_in_threadpool(
            accept_upload, db, member, target, upload.filename or "", upload.file, idempotency_key
        )
    finally:
        await form.close()


def _load_submission(db: Session, user: User, submission_id: str) -> tuple[Submission, Membership]:
    submission = db.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if submission is None:
        raise HTTPException(404, f"There is no submission {submission_id!r}.")
    try:
        member = membership(db, user, submission.assignment.course)
    except HTTPException:
        # Do not confirm that someone else's submission exists.
        raise HTTPException(404, f"There is no submission {submission_id!r}.") from None
    if submission.user_id != user.id and not member.is_staff:
        raise HTTPException(404, f"There is no submission {submission_id!r}.")
    return submission, member


@router.get("/submissions/{submission_id}", response_model=SubmissionOut)
def get_submission(db: DB, user: CurrentUser, submission_id: str) -> SubmissionOut:
    submission, member = _load_submission(db, user, submission_id)
    return submission_view(db, submission, viewer_is_staff=member.is_staff)


@router.get("/courses/{course}/assignments/{assignment}/submissions",
            response_model=list[SubmissionOut])
def list_submissions(db: DB, member: Member, assignment: str) -> list[SubmissionOut]:
    """The caller's own submissions (staff: everyone's), newest first."""
    target = get_assignment(db, member.course, assignment)
    query = select(Submission).where(Submission.assignment_id == target.id)
    if not member.is_staff:
        query = query.where(Submission.user_id == member.user.id)
    rows = db.scalars(query.order_by(Submission.submitted_at.desc()).limit(500)).all()
    return [submission_view(db, s, viewer_is_staff=member.is_staff) for s in rows]


@router.get("/submissions/{submission_id}/events")
async def submission_events(request: Request, user: CurrentUser, db: DB,
                            submission_id: str) -> StreamingResponse:
    await run_in_threadpool(_load_submission, db, user, submission_id)
    # The stream lasts minutes: it must not pin a pooled connection (current() opens
    # its own short sessions). 32 open streams used to stall the whole API.
    await run_in_threadpool(db.close)

    def current() -> dict[str, object]:
        with get_sessionmaker()() as session:
            submission = session.get(Submission, submission_id)
            assert submission is not None
            view = submission_view(session, submission, viewer_is_staff=False)
            return {"id": submission_id, "status": view.status, "score": view.score,
                    "max_score": view.max_score}

    async def stream() -> AsyncIterator[str]:
        last: str | None = None
        yield "retry: 1000\n\n"
        for _ in range(36000):  # at most about an hour
            if await request.is_disconnected():
                return
            state = await run_in_threadpool(current)
            if state["status"] != last:
                last = str(state["status"])
                yield f"event: status\ndata: {json.dumps(state)}\n\n"
                if last in FINAL_STATUSES:
                    return
            await asyncio.sleep(0.1)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/submissions/{submission_id}/jobs", response_model=list[JobOut])
def submission_jobs(db: DB, user: CurrentUser, submission_id: str) -> list[JobOut]:
    submission, member = _load_submission(db, user, submission_id)
    if not member.is_staff:
        raise HTTPException(403, "Only the course's TAs and instructors may list grading jobs.")
    jobs = db.scalars(select(GradingJob).where(GradingJob.submission_id == submission.id)
                      .order_by(GradingJob.created_at, GradingJob.id)).all()
    return [job_view(db, j) for j in jobs]


@router.post("/submissions/{submission_id}/regrade", status_code=202,
             response_model=RegradeJobOut)
def regrade_submission(db: DB, user: CurrentUser, submission_id: str,
                       body: RegradeRequest | None = None) -> RegradeJobOut:
    submission, member = _load_submission(db, user, submission_id)
    if not member.is_staff:
        raise HTTPException(403, "Only the course's TAs and instructors may regrade.")
    body = body or RegradeRequest()
    exercises = None
    if body.exercise is not None:
        slugs = {e.slug for e in submission.assignment.exercises}
        if body.exercise not in slugs:
            raise HTTPException(422, f"{submission.assignment.slug} has no exercise "
                                     f"{body.exercise!r}.")
        exercises = [body.exercise]
    job = create_job(db, submission, reason=body.reason or "regrade", requested_by=user.id,
                     exercise_slugs=exercises)
    db.add(AuditEvent(actor_id=user.id, course_id=member.course.id, action="regrade",
                      target=f"submission:{submission.id}",
                      details={"job_id": job.id, "exercise": body.exercise,
                               "reason": body.reason}))
    db.commit()
    dispatch(db, [job])
    return RegradeJobOut(job_id=job.id, submission_id=submission.id,
                         status=shown_status(db, submission))
