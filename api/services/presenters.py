"""Turning rows into what a given caller may see (visibility of hidden tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import ExerciseResultOut, HiddenTests, JobOut, SubmissionOut, TestOut
from api.services.access import is_released
from api.services.gradebook import counted_submission_ids
from api.services.manual import ManualResults, manual_results
from core import policy
from core.capacity import waiting_note
from core.models import GradingJob, Submission, TestResult, User, utcnow
from graders.intake import exercise_kinds_for


def latest_job(db: Session, submission: Submission) -> GradingJob | None:
    return db.scalar(
        select(GradingJob)
        .where(GradingJob.submission_id == submission.id)
        .order_by(GradingJob.created_at.desc(), GradingJob.id.desc())
        .limit(1)
    )


def shown_status(db: Session, submission: Submission) -> str:
    job = latest_job(db, submission)
    return job.status if job else "queued"


def test_visible(visibility: str, staff: bool, released: bool, due_passed: bool) -> bool:
    if staff or released or visibility == "visible":
        return True
    return visibility == "after_due" and due_passed


@dataclass(frozen=True)
class ScoreLine:
    """A submission's status and score as one viewer may see them (the event stream
    sends only this; `submission_view` adds the tests, cells and notes)."""

    status: str
    score: float | None
    raw_score: float | None
    max_score: float
    latest: GradingJob | None
    scored: GradingJob | None
    manual: ManualResults


def score_line(db: Session, submission: Submission, viewer_is_staff: bool) -> ScoreLine:
    latest = latest_job(db, submission)
    # The score pointer is read after the latest job: finish commits both together, so
    # a job seen graded here always comes with its score (the submission row loaded
    # earlier in this request may predate that commit: "graded" with a null score).
    current_id = db.scalar(select(Submission.current_job_id).where(Submission.id == submission.id))
    scored = db.get(GradingJob, current_id) if current_id else None
    max_score = (
        scored.max_score
        if scored is not None and scored.max_score is not None
        else _expected_max(submission)
    )
    # Manual exercises (graded by hand, docs/authoring.md): their grades add to the
    # automatic score, with the same late penalty, where this viewer may see them.
    manual = manual_results(db, submission, viewer_is_staff)
    score = scored.score if scored is not None else None
    raw_score = scored.raw_score if scored is not None else None
    if manual.points and scored is not None and score is not None:
        penalty = scored.penalty_percent or 0.0
        score = round(score + manual.points * (1.0 - penalty / 100.0), 6)
        raw_score = round((raw_score or 0.0) + manual.points, 6)
    return ScoreLine(
        status=latest.status if latest else "queued",
        score=score,
        raw_score=raw_score,
        max_score=round(max_score + manual.max_score, 6),
        latest=latest,
        scored=scored,
        manual=manual,
    )


def submission_view(
    db: Session, submission: Submission, viewer_is_staff: bool, now: datetime | None = None
) -> SubmissionOut:
    now = now or utcnow()
    assignment = submission.assignment
    due = policy.effective_due(db, assignment, submission.user_id)
    late_by = policy.late_seconds(submission.submitted_at, due)
    line = score_line(db, submission, viewer_is_staff)
    latest, scored = line.latest, line.scored
    released = is_released(assignment, now)
    due_passed = due is None or now > due
    exercises: list[ExerciseResultOut] = []
    if scored is not None:
        by_exercise: dict[str, list[TestResult]] = {}
        for r in scored.results:
            by_exercise.setdefault(r.exercise_slug, []).append(r)
        for ex in assignment.exercises:
            results = by_exercise.get(ex.slug)
            if not results:
                continue
            shown: list[TestResult] = []
            hidden: list[TestResult] = []
            for r in results:
                (
                    shown
                    if test_visible(r.visibility, viewer_is_staff, released, due_passed)
                    else hidden
                ).append(r)
            exercises.append(
                ExerciseResultOut(
                    slug=ex.slug,
                    score=round(sum(r.score for r in results), 6),
                    max_score=round(sum(r.max_score for r in results), 6),
                    tests=[
                        TestOut(
                            name=r.name,
                            outcome=r.outcome,
                            score=r.score,
                            max_score=r.max_score,
                            feedback=r.feedback,
                            visibility=r.visibility,
                        )
                        for r in shown
                    ],
                    hidden_tests=HiddenTests(
                        count=len(hidden),
                        max_score=round(sum(r.max_score for r in hidden), 6),
                        score=round(sum(r.score for r in hidden), 6),
                    )
                    if hidden
                    else None,
                )
            )
    exercises.extend(line.manual.exercises)
    log = (scored.log or {}) if scored is not None else {}
    if scored is not None and scored.late_seconds is not None:
        # The lateness the score was computed with (the deadline may have moved since;
        # a regrade recomputes both).
        late_by = scored.late_seconds
    return SubmissionOut(
        id=submission.id,
        assignment=assignment.slug,
        course=assignment.course.slug,
        student=submission.user.name,
        status=line.status,
        score=line.score,
        raw_score=line.raw_score,
        penalty_percent=scored.penalty_percent if scored is not None else None,
        max_score=line.max_score,
        submitted_at=submission.submitted_at,
        late=late_by > 0,
        late_seconds=late_by,
        file_kind=submission.file_kind,
        filename=submission.filename,
        job_id=scored.id if scored is not None else (latest.id if latest else None),
        error=latest.error if latest is not None and latest.status == "failed" else None,
        exercises=exercises,
        cells=list(log.get("cells", [])),
        output=str(log.get("output", "")),
        notes=_notes(db, log, latest),
        counts=counts(db, submission, scored),
    )


def counts(db: Session, submission: Submission, scored: GradingJob | None) -> bool:
    """Whether this submission is the one whose score counts (last or best policy)."""
    if scored is None or scored.status != "graded":
        return False
    return submission.id in counted_submission_ids(db, submission.assignment, submission.user_id)


def _expected_max(submission: Submission) -> float:
    kinds = exercise_kinds_for(submission.file_kind)
    return round(sum(e.max_score for e in submission.assignment.exercises if e.kind in kinds), 6)


def job_view(db: Session, job: GradingJob) -> JobOut:
    requester = db.get(User, job.requested_by) if job.requested_by else None
    return JobOut(
        id=job.id,
        status=job.status,
        attempt=job.attempt,
        reason=job.reason,
        queue=job.queue,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        score=job.score,
        raw_score=job.raw_score,
        max_score=job.max_score,
        penalty_percent=job.penalty_percent,
        worker_host=job.worker_host,
        device=job.device,
        isolation=job.isolation,
        grader_version=job.grader_version,
        assignment_version=job.assignment_version,
        seeds=job.seeds,
        durations=job.durations,
        error=job.error,
        batch_id=job.batch_id,
        requested_by=requester.name if requester else None,
        exercises=job.exercise_slugs,
    )


def history_view(db: Session, submission: Submission) -> list[dict[str, object]]:
    """Every job of a submission, oldest first, with the score before and after it.

    "Before" is the submission's score when the job finished (or now, if it has not):
    that of the latest job graded before it. A job that did not grade changes nothing.
    """
    jobs = db.scalars(
        select(GradingJob)
        .where(GradingJob.submission_id == submission.id)
        .order_by(GradingJob.created_at, GradingJob.id)
    ).all()
    requesters = {
        u.id: u.name
        for u in db.scalars(
            select(User).where(User.id.in_({j.requested_by for j in jobs if j.requested_by}))
        )
    }
    graded = sorted(
        (j for j in jobs if j.status == "graded" and j.finished_at is not None),
        key=lambda j: (j.finished_at, j.created_at),
    )
    before_of: dict[str, float | None] = {}
    previous: float | None = None
    for job in graded:
        before_of[job.id] = previous
        previous = job.score
    entries: list[dict[str, object]] = []
    for job in jobs:
        done = job.id in before_of
        entries.append(
            {
                "job_id": job.id,
                "created_at": job.created_at,
                "finished_at": job.finished_at,
                "status": job.status,
                "reason": job.reason,
                "requested_by": requesters.get(job.requested_by) if job.requested_by else None,
                "batch_id": job.batch_id,
                "exercises": job.exercise_slugs,
                "score_before": before_of[job.id] if done else previous,
                "score_after": job.score if done else None,
                "raw_score": job.raw_score,
                "penalty_percent": job.penalty_percent,
                "late_seconds": job.late_seconds,
                "current": job.id == submission.current_job_id,
            }
        )
    return entries


def _notes(db: Session, log: dict[str, Any], latest: GradingJob | None) -> list[str]:
    """The job's notes, and while it waits, why (e.g. no GPU worker is running)."""
    notes = [str(n) for n in log.get("notes", [])]
    if latest is not None and latest.status == "queued":
        waiting = waiting_note(db, latest)
        if waiting:
            notes.append(waiting)
    return notes
