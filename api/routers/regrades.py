"""Regrading a whole assignment (or one exercise of it) as a batch with progress."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import func, select

from api.deps import DB, CurrentUser, Member, get_assignment, membership, require_staff
from api.schemas import BatchCreated, BatchOut, RegradeRequest
from core.jobs import create_job, dispatch
from core.models import AuditEvent, GradingJob, RegradeBatch, Submission

router = APIRouter(prefix="/api/v1")


def counted_submission_ids(db: DB, assignment_id: int) -> list[str]:
    """Every submission of the assignment: a regrade re-runs all of them."""
    return list(db.scalars(select(Submission.id).where(Submission.assignment_id == assignment_id)
                           .order_by(Submission.submitted_at)).all())


@router.post("/courses/{course}/assignments/{assignment}/regrade", status_code=202,
             response_model=BatchCreated)
def regrade_assignment(db: DB, member: Member, assignment: str,
                       body: RegradeRequest | None = None) -> BatchCreated:
    require_staff(member)
    body = body or RegradeRequest()
    target = get_assignment(db, member.course, assignment)
    exercises = None
    if body.exercise is not None:
        if body.exercise not in {e.slug for e in target.exercises}:
            raise HTTPException(422, f"{target.slug} has no exercise {body.exercise!r}.")
        exercises = [body.exercise]
    batch = RegradeBatch(course_id=member.course.id, assignment_id=target.id,
                         exercise_slug=body.exercise, requested_by=member.user.id,
                         reason=body.reason)
    db.add(batch)
    db.flush()
    jobs = []
    for submission_id in counted_submission_ids(db, target.id):
        submission = db.get(Submission, submission_id)
        assert submission is not None
        jobs.append(create_job(db, submission, reason=body.reason or "assignment regrade",
                               requested_by=member.user.id, batch_id=batch.id,
                               exercise_slugs=exercises))
    batch.total = len(jobs)
    db.add(AuditEvent(actor_id=member.user.id, course_id=member.course.id,
                      action="regrade_assignment", target=f"assignment:{target.slug}",
                      details={"batch_id": batch.id, "total": len(jobs),
                               "exercise": body.exercise, "reason": body.reason}))
    db.commit()
    dispatch(db, jobs)
    return BatchCreated(batch_id=batch.id, total=len(jobs),
                        status="done" if not jobs else "running")


@router.get("/regrades/{batch_id}", response_model=BatchOut)
def batch_status(db: DB, user: CurrentUser, batch_id: str) -> BatchOut:
    batch = db.get(RegradeBatch, batch_id) if len(batch_id) <= 64 else None
    if batch is None:
        raise HTTPException(404, f"There is no regrade batch {batch_id!r}.")
    from core.models import Course

    course = db.get(Course, batch.course_id)
    assert course is not None
    try:
        member = membership(db, user, course)
    except HTTPException:
        raise HTTPException(404, f"There is no regrade batch {batch_id!r}.") from None
    require_staff(member)
    rows = db.execute(select(GradingJob.status, func.count()).where(
        GradingJob.batch_id == batch.id).group_by(GradingJob.status)).all()
    counts = {status: n for status, n in rows}
    done = counts.get("graded", 0)
    failed = counts.get("failed", 0)
    status = "done" if done + failed >= batch.total else "running"
    return BatchOut(batch_id=batch.id, total=batch.total, done=done, failed=failed,
                    status=status)
