"""Regrades: one submission, or a batch (a whole assignment, one exercise of it, or one
student's submissions) with its progress. Old jobs are always kept."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.schemas import BatchCreated, BatchOut, RegradeJobOut
from api.services.access import (
    Membership,
    get_assignment,
    require_staff,
    staff_batch,
    visible_submission,
)
from api.services.presenters import shown_status
from core.audit import record
from core.errors import Unreadable
from core.jobs import create_job, dispatch
from core.models import (
    Assignment,
    AssignmentVersion,
    GradingJob,
    RegradeBatch,
    Submission,
    User,
)
from graders.intake import file_kinds_for


def _exercises(assignment: Assignment, exercise: str | None) -> list[str] | None:
    if exercise is None:
        return None
    if exercise not in {e.slug for e in assignment.exercises}:
        raise Unreadable(f"{assignment.slug} has no exercise {exercise[:64]!r}.")
    return [exercise]


def checked_version(db: Session, assignment: Assignment, version: str | None) -> str | None:
    """A version the request names, if the assignment has had it (None: the current)."""
    if version is None:
        return None
    stored = db.get(AssignmentVersion, version) if len(version) <= 64 else None
    if stored is None or stored.slug != assignment.slug:
        raise Unreadable(f"{assignment.slug} has no version {version[:64]!r}.")
    return version


def kinds_grading(assignment: Assignment, exercise: str | None) -> frozenset[str] | None:
    """The file kinds whose submissions grade this exercise (None: every kind)."""
    if exercise is None:
        return None
    spec = next(e for e in assignment.exercises if e.slug == exercise)
    return file_kinds_for(spec.kind)


def start_batch(
    db: Session,
    member: Membership,
    assignment: Assignment,
    exercise: str | None = None,
    reason: str = "",
    user_id: int | None = None,
    version: str | None = None,
) -> tuple[RegradeBatch, list[GradingJob]]:
    """A new job for every submission of the assignment (of one student if `user_id`);
    for one exercise, only the submissions that grade it.

    Commits (batch, jobs and the audit event together); the caller dispatches the jobs.
    """
    exercises = _exercises(assignment, exercise)
    version = checked_version(db, assignment, version)
    batch = RegradeBatch(
        course_id=member.course.id,
        assignment_id=assignment.id,
        exercise_slug=exercise,
        requested_by=member.user.id,
        reason=reason,
    )
    db.add(batch)
    db.flush()
    query = select(Submission).where(Submission.assignment_id == assignment.id)
    if user_id is not None:
        query = query.where(Submission.user_id == user_id)
    kinds = kinds_grading(assignment, exercise)
    if kinds is not None:
        query = query.where(Submission.file_kind.in_(sorted(kinds)))
    jobs = [
        create_job(
            db,
            submission,
            reason=reason or "assignment regrade",
            requested_by=member.user.id,
            batch_id=batch.id,
            exercise_slugs=exercises,
            assignment_version=version,
        )
        for submission in db.scalars(query.order_by(Submission.submitted_at, Submission.id))
    ]
    batch.total = len(jobs)
    details: dict[str, object] = {
        "batch_id": batch.id,
        "total": len(jobs),
        "exercise": exercise,
        "reason": reason,
        "version": version or assignment.version,
    }
    if user_id is not None:
        details["student_id"] = user_id
    record(
        db,
        member.user.id,
        member.course.id,
        "regrade_assignment" if user_id is None else "regrade_student",
        f"assignment:{assignment.slug}",
        details,
    )
    db.commit()
    return batch, jobs


def regrade_batch(
    db: Session, member: Membership, assignment: Assignment, user_id: int | None, reason: str
) -> str:
    """start_batch and dispatch; the batch id (settings changes and extensions)."""
    batch, jobs = start_batch(db, member, assignment, reason=reason, user_id=user_id)
    dispatch(db, jobs)
    return batch.id


def regrade_assignment(
    db: Session,
    member: Membership,
    assignment: str,
    exercise: str | None,
    reason: str,
    version: str | None = None,
) -> BatchCreated:
    require_staff(member, "regrade")
    target = get_assignment(db, member.course, assignment)
    batch, jobs = start_batch(db, member, target, exercise, reason, version=version)
    dispatch(db, jobs)
    return BatchCreated(
        batch_id=batch.id, total=len(jobs), status="done" if not jobs else "running"
    )


def regrade_submission(
    db: Session,
    user: User,
    submission_id: str,
    exercise: str | None,
    reason: str,
    version: str | None = None,
) -> RegradeJobOut:
    submission, member = visible_submission(db, user, submission_id)
    require_staff(member, "regrade")
    exercises = _exercises(submission.assignment, exercise)
    version = checked_version(db, submission.assignment, version)
    job = create_job(
        db,
        submission,
        reason=reason or "regrade",
        requested_by=user.id,
        exercise_slugs=exercises,
        assignment_version=version,
    )
    record(
        db,
        user.id,
        member.course.id,
        "regrade",
        f"submission:{submission.id}",
        {"job_id": job.id, "exercise": exercise, "reason": reason},
    )
    db.commit()
    dispatch(db, [job])
    return RegradeJobOut(
        job_id=job.id, submission_id=submission.id, status=shown_status(db, submission)
    )


def batch_status(db: Session, user: User, batch_id: str) -> BatchOut:
    batch = staff_batch(db, user, batch_id)
    rows = db.execute(
        select(GradingJob.status, func.count())
        .where(GradingJob.batch_id == batch.id)
        .group_by(GradingJob.status)
    ).all()
    counts = {status: n for status, n in rows}
    done = counts.get("graded", 0)
    failed = counts.get("failed", 0)
    status = "done" if done + failed >= batch.total else "running"
    return BatchOut(batch_id=batch.id, total=batch.total, done=done, failed=failed, status=status)
