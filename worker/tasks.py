"""The grading task. Idempotent: a job is claimed (attempt + 1) before any work, so a
second delivery of the same message finds nothing to do, and results are written only
under the claim that did the work."""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery.exceptions import Reject
from celery.signals import setup_logging as celery_setup_logging
from sqlalchemy.exc import InterfaceError, OperationalError

from core.db import get_sessionmaker
from core.jobs import Claim, claim, dispatch, finish, heartbeat, release_for_retry
from core.logs import job_context, set_attempt, setup_logging
from core.models import AssignmentVersion, GradingJob
from core.queue import GRADE_TASK
from core.settings import get_settings
from worker.celery_app import app
from worker.devices import grading_device
from worker.grading import JobInput, run_job
from worker.presence import start_presence

start_presence()  # the worker's main process announces its queues (core/capacity.py)

log = logging.getLogger("autograder.worker")
T = TypeVar("T")


@celery_setup_logging.connect
def _json_logs(loglevel: int | str | None = None, **_: Any) -> None:
    """The worker logs JSON lines (Celery's own lines too) instead of Celery's format."""
    setup_logging("worker", loglevel or logging.INFO)


def _with_database(what: str, job_id: str, fn: Callable[[], T], patience: float) -> T:
    """Run fn, retrying while the database is unreachable (a restart takes seconds)."""
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            return fn()
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s of job %s: database unavailable, retrying in %.1f s: %s",
                        what, job_id, delay, str(exc).splitlines()[0],
                        extra={"job_id": job_id})
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class Heartbeat(threading.Thread):
    """Extends the job's lease while it is graded, so the sweeper knows we are alive."""

    def __init__(self, c: Claim, interval: float) -> None:
        super().__init__(daemon=True)
        self.claim, self.interval = c, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                with get_sessionmaker()() as session:
                    if not heartbeat(session, self.claim):
                        return
            except Exception as exc:  # the database may blink; the next beat retries
                log.warning("heartbeat for job %s failed: %s", self.claim.job_id, exc,
                            extra={"job_id": self.claim.job_id,
                                   "attempt": self.claim.attempt})


@app.task(name=GRADE_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def grade_job(job_id: str) -> str:
    with job_context(job_id):
        return _grade(job_id)


def _grade(job_id: str) -> str:
    settings = get_settings()
    maker = get_sessionmaker()
    # Waiting out a database restart here is cheaper than the sweeper's re-send; if it
    # lasts longer, the message goes back to the queue (nothing was claimed).
    patience = max(5.0, min(30.0, settings.lease_seconds / 2))

    def take() -> tuple[Claim, JobInput] | None:
        with maker() as session:
            c = claim(session, job_id, platform.node())
            if c is None:
                return None
            job = session.get(GradingJob, job_id)
            assert job is not None
            # The version the job names (older jobs: the assignment's current one).
            version = job.assignment_version or job.submission.assignment.version or None
            bundle = session.get(AssignmentVersion, version) if version else None
            return c, JobInput(
                # The folder's name when it was stored (a course's copy may differ).
                assignment_slug=bundle.slug if bundle else job.submission.assignment.slug,
                file_kind=job.submission.file_kind,
                sha256=job.submission.sha256,
                exercise_slugs=job.exercise_slugs,
                assignment_version=version,
                bundle_sha256=bundle.bundle_sha256 if bundle else None,
            )

    try:
        taken = _with_database("claim", job_id, take, patience)
    except (OperationalError, InterfaceError) as exc:
        raise Reject(f"database unavailable: {exc}", requeue=True) from exc
    if taken is None:
        log.info("job %s: nothing to do (already taken or finished)", job_id)
        return "skipped"
    c, job_input = taken
    set_attempt(c.attempt)
    log.info("job %s attempt %s: grading %s", job_id, c.attempt, job_input.assignment_slug)
    beat = Heartbeat(c, interval=max(1.0, settings.lease_seconds / 4))
    beat.start()
    try:
        rows, facts = run_job(job_input, device=grading_device())
    except Exception as exc:  # noqa: BLE001 - the service failed (GraderError...), not the student
        log.exception("job %s attempt %s failed in the grader", job_id, c.attempt)
        beat.stopped.set()
        with maker() as session:
            outcome = release_for_retry(session, c, f"{type(exc).__name__}: {exc}")
        if outcome == "queued":
            with maker() as session:
                job = session.get(GradingJob, job_id)
                if job is not None:
                    dispatch(session, [job])
        return outcome
    finally:
        beat.stopped.set()

    def write() -> bool:
        with maker() as session:
            return finish(session, c, rows, facts)

    # If the database stays away longer, the lease runs out and the job is graded again.
    written = _with_database("finish", job_id, write, patience)
    log.info("job %s attempt %s: %s", job_id, c.attempt, "graded" if written else "stale",
             extra={"duration": (facts.get("durations") or {}).get("total")})
    return "graded" if written else "stale"
