"""The grading task. Idempotent: a job is claimed (attempt + 1) before any work, so a
second delivery of the same message finds nothing to do, and results are written only
under the claim that did the work."""

from __future__ import annotations

import logging
import platform
import threading

from core.db import get_sessionmaker
from core.jobs import Claim, claim, dispatch, finish, heartbeat, release_for_retry
from core.models import GradingJob
from core.queue import GRADE_TASK
from core.settings import get_settings
from worker.celery_app import app
from worker.devices import grading_device
from worker.grading import JobInput, run_job

log = logging.getLogger("autograder.worker")


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
                log.warning("heartbeat for job %s failed: %s", self.claim.job_id, exc)


@app.task(name=GRADE_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def grade_job(job_id: str) -> str:
    settings = get_settings()
    maker = get_sessionmaker()
    with maker() as session:
        c = claim(session, job_id, platform.node())
        if c is None:
            log.info("job %s: nothing to do (already taken or finished)", job_id)
            return "skipped"
        job = session.get(GradingJob, job_id)
        assert job is not None
        job_input = JobInput(
            assignment_slug=job.submission.assignment.slug,
            file_kind=job.submission.file_kind,
            sha256=job.submission.sha256,
            exercise_slugs=job.exercise_slugs,
        )
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
    with maker() as session:
        written = finish(session, c, rows, facts)
    log.info("job %s attempt %s: %s", job_id, c.attempt, "graded" if written else "stale")
    return "graded" if written else "stale"
