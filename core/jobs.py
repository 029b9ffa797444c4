"""The life of a grading job, shared by the API, the workers and the sweeper.

queued --claim--> running --finish--> graded
   ^                 |--lease expired / worker lost--> queued (attempt + 1)
   |                 `--service error, attempts left--> queued; none left --> failed

Every transition is one conditional UPDATE, so two deliveries of the same task, or
a worker that comes back after its lease was taken over, can never write a second
score: results are written only by the claim (attempt number) that holds the job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, object_session

from core import capacity, notify
from core.db import table
from core.job_writes import Claim
from core.models import Assignment, GradingJob, Submission, utcnow
from core.queue import queue_depths, send_grade
from core.settings import get_settings

log = logging.getLogger(__name__)

FINAL_STATUSES = ("graded", "failed")
#: How long the sweeper leaves a job that was never sent to the one that created it.
UNSENT_GRACE = timedelta(seconds=5)


def wants_gpu(assignment: Assignment, exercise_slugs: list[str] | None) -> bool:
    return any(
        e.device == "gpu"
        for e in assignment.exercises
        if exercise_slugs is None or e.slug in exercise_slugs
    )


def queue_for(
    assignment: Assignment, exercise_slugs: list[str] | None, session: Session | None = None
) -> str:
    """The GPU queue while a GPU worker is alive, else cpu (core/capacity.py: route)."""
    return capacity.route(
        session or object_session(assignment), wants_gpu(assignment, exercise_slugs)
    )


def create_job(
    session: Session,
    submission: Submission,
    reason: str = "submission",
    requested_by: int | None = None,
    batch_id: str | None = None,
    exercise_slugs: list[str] | None = None,
    assignment_version: str | None = None,
) -> GradingJob:
    """A queued job; graded with `assignment_version` if given (a version the caller
    checked the assignment has had), else with the assignment's current one."""
    assignment = submission.assignment
    job = GradingJob(
        submission_id=submission.id,
        queue=queue_for(assignment, exercise_slugs, session),
        # The job names the version it is graded with; workers fetch that bundle.
        assignment_version=assignment_version or assignment.version or None,
        reason=reason,
        requested_by=requested_by,
        batch_id=batch_id,
        exercise_slugs=exercise_slugs,
    )
    session.add(job)
    session.flush()
    return job


def dispatch(session: Session, jobs: list[GradingJob]) -> int:
    """Send committed jobs to the broker; record when each was sent. Returns how many.

    Never raises: the jobs are already committed, so a broker or database that fails
    here must not turn an accepted upload into an error. A job whose sending (or whose
    sent_at) was not recorded is sent again by the sweeper; a duplicate message is
    harmless, the claim takes each job once.
    """
    return dispatch_ids(session, [(job.id, job.queue) for job in jobs])


@lru_cache
def _record_sent() -> Executable:
    jobs = table(GradingJob)
    return update(jobs).where(jobs.c.id == bindparam("job_id")).values(sent_at=bindparam("sent_at"))


def dispatch_sent(conn: Connection, job_id: str, queue: str) -> bool:
    """`dispatch` of one committed job on `conn` (the upload path: no ORM session, one
    statement in autocommit, the connection the job was inserted on); never raises."""
    if not send_grade(job_id, queue):
        return False
    try:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            _record_sent(), {"job_id": job_id, "sent_at": utcnow()}
        )
    except SQLAlchemyError as exc:
        log.warning(
            "sent job %s but could not record it (the sweeper will send it again): %s",
            job_id,
            str(exc).splitlines()[0],
            extra={"job_id": job_id},
        )
    return True


def dispatch_ids(session: Session, jobs: list[tuple[str, str]]) -> int:
    """`dispatch` for (job id, queue) pairs."""
    sent = [job_id for job_id, queue in jobs if send_grade(job_id, queue)]
    if sent:
        try:
            session.execute(
                update(GradingJob).where(GradingJob.id.in_(sent)).values(sent_at=utcnow())
            )
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            log.warning(
                "sent %d job(s) but could not record it (the sweeper will send them again): %s",
                len(sent),
                str(exc).splitlines()[0],
                extra={"job_id": sent[0] if len(sent) == 1 else None},
            )
    return len(sent)


def heartbeat(session: Session, c: Claim) -> bool:
    settings = get_settings()
    result = session.execute(
        update(GradingJob)
        .where(
            GradingJob.id == c.job_id,
            GradingJob.attempt == c.attempt,
            GradingJob.status == "running",
        )
        .values(lease_expires_at=utcnow() + timedelta(seconds=settings.lease_seconds))
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release_for_retry(session: Session, c: Claim, reason: str) -> str:
    """The service failed to grade (not the student's fault): retry, or give up clearly."""
    settings = get_settings()
    job = session.get(GradingJob, c.job_id)
    if job is None or job.attempt != c.attempt or job.status != "running":
        session.rollback()
        return "stale"
    if job.attempt >= settings.max_attempts:
        job.status = "failed"
        job.finished_at = utcnow()
        job.lease_expires_at = None
        job.error = f"gave up after {job.attempt} attempts: {reason}"
        notify.job_changed(session, job.submission_id)
        session.commit()
        return "failed"
    job.status = "queued"
    job.lease_expires_at = None
    job.sent_at = None
    job.error = f"attempt {job.attempt} failed, retrying: {reason}"
    notify.job_changed(session, job.submission_id)
    session.commit()
    return "queued"


def sweep(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Re-queue jobs whose worker died, move queued jobs off queues no live worker
    consumes (core/capacity.py), re-send jobs the broker lost or never got.

    Runs every few seconds in the API process; safe to run in several at once
    (every change is a conditional UPDATE, duplicates of a send are claimed once).
    """
    settings = get_settings()
    now = now or utcnow()
    counts = {"requeued": 0, "failed": 0, "resent": 0, "moved": 0}
    expired = session.scalars(
        select(GradingJob).where(GradingJob.status == "running", GradingJob.lease_expires_at < now)
    ).all()
    changed: list[tuple[GradingJob, str]] = []
    for job in expired:
        if job.attempt >= settings.max_attempts:
            new_values: dict[str, Any] = {
                "status": "failed",
                "finished_at": now,
                "lease_expires_at": None,
                "error": f"gave up after {job.attempt} attempts: the worker grading it was "
                f"lost each time (last on {job.worker_host}: killed, out of memory "
                f"or stopped without a heartbeat for {settings.lease_seconds:g} s); "
                f"this is not the student's fault, a TA can regrade it",
            }
            outcome = "failed"
        else:
            new_values = {
                "status": "queued",
                "lease_expires_at": None,
                "sent_at": None,
                "error": f"worker {job.worker_host} was lost during attempt "
                f"{job.attempt}; re-queued",
            }
            outcome = "requeued"
        result = session.execute(
            update(GradingJob)
            .where(
                GradingJob.id == job.id,
                GradingJob.attempt == job.attempt,
                GradingJob.status == "running",
            )
            .values(**new_values)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            counts[outcome] += 1
            changed.append((job, outcome))
            notify.job_changed(session, job.submission_id)
    session.commit()
    for job, outcome in changed:
        log.warning(
            "job %s: lease expired during attempt %s on %s; %s",
            job.id,
            job.attempt,
            job.worker_host,
            outcome,
            extra={"job_id": job.id, "attempt": job.attempt},
        )

    # Jobs waiting on a queue nobody consumes go where a worker is (sent just below).
    counts["moved"] = len(capacity.reroute(session))

    stale_before = now - timedelta(seconds=settings.resend_after_seconds)
    # A job never sent is left alone for a moment after it was created: the upload (or
    # regrade) that committed it sends it right after its commit.
    unsent_before = now - UNSENT_GRACE
    waiting = session.scalars(
        select(GradingJob)
        .where(
            GradingJob.status == "queued",
            (GradingJob.sent_at.is_(None) & (GradingJob.created_at < unsent_before))
            | (GradingJob.sent_at < stale_before),
        )
        .order_by(GradingJob.created_at)
        .limit(500)
    ).all()
    if waiting:
        depths = queue_depths()
        if all(d < 0 for d in depths.values()):
            # The broker is away: do not spend this round on up to 500 failing sends
            # (each takes a connection attempt); the next round tries again.
            log.warning(
                "sweeper: the broker is unreachable; %d job(s) wait to be sent", len(waiting)
            )
            return counts
        # A job sent long ago is re-sent only when its queue is empty: then its message
        # was lost (broker restarted without persistence), not merely waiting its turn.
        to_send = [j for j in waiting if j.sent_at is None or depths.get(j.queue, -1) == 0]
        counts["resent"] = dispatch(session, to_send)
    return counts
