"""Regrades as batches with progress (a whole assignment, one exercise of it, or one
student's submissions), and the history of a submission's scores across its jobs."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import DB, CurrentUser, Member, Membership, get_assignment, membership, require_staff
from api.schemas import BatchCreated, BatchOut, RegradeRequest
from api.services.views import history_view
from core.jobs import create_job, dispatch
from core.models import Assignment, AuditEvent, Course, GradingJob, RegradeBatch, Submission
from graders.intake import CODE_KINDS, MODEL_KINDS

router = APIRouter(prefix="/api/v1")


def kinds_grading(assignment: Assignment, exercise: str | None) -> frozenset[str] | None:
    """The file kinds whose submissions grade this exercise (None: every kind)."""
    if exercise is None:
        return None
    spec = next(e for e in assignment.exercises if e.slug == exercise)
    return MODEL_KINDS if spec.kind == "model" else CODE_KINDS


def start_batch(db: Session, member: Membership, assignment: Assignment,
                exercise: str | None = None, reason: str = "",
                user_id: int | None = None) -> tuple[RegradeBatch, list[GradingJob]]:
    """A new job for every submission of the assignment (of one student if `user_id`);
    for one exercise, only the submissions that grade it. Old jobs are kept.

    Commits (batch, jobs and the audit event together); the caller dispatches the jobs.
    """
    exercises = None
    if exercise is not None:
        if exercise not in {e.slug for e in assignment.exercises}:
            raise HTTPException(422, f"{assignment.slug} has no exercise {exercise!r}.")
        exercises = [exercise]
    batch = RegradeBatch(course_id=member.course.id, assignment_id=assignment.id,
                         exercise_slug=exercise, requested_by=member.user.id, reason=reason)
    db.add(batch)
    db.flush()
    query = select(Submission).where(Submission.assignment_id == assignment.id)
    if user_id is not None:
        query = query.where(Submission.user_id == user_id)
    kinds = kinds_grading(assignment, exercise)
    if kinds is not None:
        query = query.where(Submission.file_kind.in_(sorted(kinds)))
    jobs = [
        create_job(db, submission, reason=reason or "assignment regrade",
                   requested_by=member.user.id, batch_id=batch.id, exercise_slugs=exercises)
        for submission in db.scalars(query.order_by(Submission.submitted_at, Submission.id))
    ]
    batch.total = len(jobs)
    details = {"batch_id": batch.id, "total": len(jobs), "exercise": exercise,
               "reason": reason}
    if user_id is not None:
        details["student_id"] = user_id
    db.add(AuditEvent(actor_id=member.user.id, course_id=member.course.id,
                      action="regrade_assignment" if user_id is None else "regrade_student",
                      target=f"assignment:{assignment.slug}", details=details))
    db.commit()
    return batch, jobs


@router.post("/courses/{course}/assignments/{assignment}/regrade", status_code=202,
             response_model=BatchCreated)
def regrade_assignment(db: DB, member: Member, assignment: str,
                       body: RegradeRequest | None = None) -> BatchCreated:
    require_staff(member)
    body = body or RegradeRequest()
    target = get_assignment(db, member.course, assignment)
    batch, jobs = start_batch(db, member, target, body.exercise, body.reason)
    dispatch(db, jobs)
    return BatchCreated(batch_id=batch.id, total=len(jobs),
                        status="done" if not jobs else "running")


def _batch_for_staff(db: Session, user: CurrentUser, batch_id: str) -> RegradeBatch:
    batch = db.get(RegradeBatch, batch_id) if len(batch_id) <= 64 else None
    if batch is None:
        raise HTTPException(404, f"There is no regrade batch {batch_id!r}.")
    course = db.get(Course, batch.course_id)
    assert course is not None
    try:
        member = membership(db, user, course)
    except HTTPException:
        raise HTTPException(404, f"There is no regrade batch {batch_id!r}.") from None
    require_staff(member)
    return batch


@router.get("/regrades/{batch_id}", response_model=BatchOut)
def batch_status(db: DB, user: CurrentUser, batch_id: str) -> BatchOut:
    batch = _batch_for_staff(db, user, batch_id)
    rows = db.execute(select(GradingJob.status, func.count()).where(
        GradingJob.batch_id == batch.id).group_by(GradingJob.status)).all()
    counts = {status: n for status, n in rows}
    done = counts.get("graded", 0)
    failed = counts.get("failed", 0)
    status = "done" if done + failed >= batch.total else "running"
    return BatchOut(batch_id=batch.id, total=batch.total, done=done, failed=failed,
                    status=status)


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


@router.get("/submissions/{submission_id}/history", response_model=list[HistoryEntry])
def submission_history(db: DB, user: CurrentUser, submission_id: str) -> list[HistoryEntry]:
    """Each grading job of the submission, oldest first: when, why, who asked, and the
    score before -> after. Staff of the course, and the submission's owner."""
    from api.routers.submissions import _load_submission

    submission, _ = _load_submission(db, user, submission_id)
    return [HistoryEntry.model_validate(e) for e in history_view(db, submission)]
