"""Grading one job in the worker: from the job row to stored results.

`grade_delivered` is one delivery of a grading message: claim the job (attempt + 1),
grade it, write the results under that claim, or hand it back for a retry. It loads
the submission's bytes and the assignment version the job names (its bundle) from the
service's blob store, through the worker's local cache (worker/content.py), runs the
engine with a sandbox per job, and hands its test outcomes to core.jobs.finish.
No HTTP, no Celery here: worker/tasks.py wraps it in a task, the tests' in-process
queue calls it directly.
"""

from __future__ import annotations

import logging
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from core.blobs import get_blob_store
from core.db import get_engine, get_sessionmaker
from core.job_writes import Claim, JobInput, claim_job, finish_job
from core.jobs import dispatch, heartbeat, release_for_retry
from core.logs import set_attempt
from core.models import GradingJob
from core.settings import get_settings
from graders.course import load_assignment
from graders.intake import MODEL_KINDS
from graders.outcome import TestOutcome
from graders.runner import (
    FEEDBACK_CHARS,
    GRADER_VERSION,
    GradeLimits,
    GradeReport,
    exercises_for,
    grade,
)
from protocol.text import clean
from worker.content import MissingContent, local_cache
from worker.sandbox.launcher import sandbox_factory

log = logging.getLogger("autograder.worker")
T = TypeVar("T")

MODEL_SUFFIX = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}


class ClaimUnavailable(Exception):
    """The job could not be claimed: the database stayed away. Nothing was taken, so
    the message may go back to the queue."""


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
            log.warning(
                "%s of job %s: database unavailable, retrying in %.1f s: %s",
                what,
                job_id,
                delay,
                str(exc).splitlines()[0],
                extra={"job_id": job_id},
            )
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
                log.warning(
                    "heartbeat for job %s failed: %s",
                    self.claim.job_id,
                    exc,
                    extra={"job_id": self.claim.job_id, "attempt": self.claim.attempt},
                )


def take_job(job_id: str, host: str) -> tuple[Claim, JobInput] | None:
    """Claim the job and read what grading it needs; None if there is nothing to do."""
    with get_engine().connect() as conn:
        return claim_job(conn, job_id, host)


def grade_delivered(job_id: str, device: str) -> str:
    """One delivery of the job's message: skipped, graded, stale, queued or failed.

    Idempotent: a second delivery finds the job taken or finished and does nothing;
    results are written only under the claim that did the work. Raises
    ClaimUnavailable when the database stays away before anything was claimed.
    """
    settings = get_settings()
    maker = get_sessionmaker()
    # Waiting out a database restart here is cheaper than the sweeper's re-send; if it
    # lasts longer, the message goes back to the queue (nothing was claimed).
    patience = max(5.0, min(30.0, settings.lease_seconds / 2))

    def take() -> tuple[Claim, JobInput] | None:
        return take_job(job_id, platform.node())

    try:
        taken = _with_database("claim", job_id, take, patience)
    except (OperationalError, InterfaceError) as exc:
        raise ClaimUnavailable(f"database unavailable: {exc}") from exc
    if taken is None:
        log.info("job %s: nothing to do (already taken or finished)", job_id)
        return "skipped"
    c, job_input = taken
    set_attempt(c.attempt)
    log.info("job %s attempt %s: grading %s", job_id, c.attempt, job_input.assignment_slug)
    beat = Heartbeat(c, interval=max(1.0, settings.lease_seconds / 4))
    beat.start()
    try:
        rows, facts = run_job(job_input, device=device)
    except Exception as exc:  # the service failed (GraderError...), not the student
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
        with get_engine().connect() as conn:
            return finish_job(conn, c, rows, facts)

    # If the database stays away longer, the lease runs out and the job is graded again.
    written = _with_database("finish", job_id, write, patience)
    log.info(
        "job %s attempt %s: %s",
        job_id,
        c.attempt,
        "graded" if written else "stale",
        extra={"duration": (facts.get("durations") or {}).get("total")},
    )
    return "graded" if written else "stale"


def assignment_folder(job: JobInput) -> Path:
    """The folder to grade with: the job's version, fetched and unpacked in the cache."""
    if job.bundle_sha256:
        return local_cache().assignment_folder(
            get_blob_store(), job.bundle_sha256, job.assignment_slug, job.assignment_version
        )
    if job.assignment_version:
        raise MissingContent(
            f"{job.assignment_slug} version {job.assignment_version} has no "
            "bundle in the database (`autograder migrate` stores the "
            "course's)"
        )
    return get_settings().course_dir / job.assignment_slug


def run_job(job: JobInput, device: str = "cpu") -> tuple[list[TestOutcome], dict[str, Any]]:
    settings = get_settings()
    # A bundle's folder was checked against its version when the cache unpacked it.
    known_version = job.assignment_version if job.bundle_sha256 else None
    loaded = load_assignment(assignment_folder(job), known_version)
    data = local_cache().read_blob(get_blob_store(), job.sha256)
    workdir = Path(tempfile.mkdtemp(prefix="job-"))
    try:
        model_path = None
        if job.file_kind in MODEL_KINDS:
            model_path = "submission" + MODEL_SUFFIX[job.file_kind]
            (workdir / model_path).write_bytes(data)
        workdir.chmod(0o755)
        graded = {spec.slug for spec in exercises_for(loaded, job.file_kind, job.exercise_slugs)}
        factory = sandbox_factory(
            public_dirs=(loaded.meta.public_dir,),
            submission_dir=workdir,
            device=device,
            memory_mb=max(
                (e.memory_mb or 0 for e in loaded.meta.exercises if e.slug in graded), default=0
            )
            or None,
        )
        limits = GradeLimits(
            cell_timeout=settings.sandbox_cell_timeout,
            call_timeout=settings.sandbox_call_timeout,
            job_timeout=settings.sandbox_job_timeout,
        )
        report = grade(
            loaded,
            job.file_kind,
            data,
            factory,
            only=job.exercise_slugs,
            limits=limits,
            model_path=model_path,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    facts = facts_of(report, loaded.meta.version, loaded.seeds, device)
    gpu_exercises = [e for e in report.exercises if loaded.exercises[e].device == "gpu"]
    if gpu_exercises and device == "cpu":
        facts["log"]["notes"] = [
            f"{', '.join(gpu_exercises)} asks for a GPU; this worker has none, so it was "
            "graded on the CPU (same tests, same tolerances)."
        ]
    return stored_outcomes(report), facts


def stored_outcomes(report: GradeReport) -> list[TestOutcome]:
    """The report's outcomes as they are stored: feedback capped again, so storage per
    job is bounded whatever the submission did (protocol.text.clean also drops NUL,
    which PostgreSQL refuses)."""
    return [replace(t, feedback=clean(t.feedback, FEEDBACK_CHARS)) for t in report.tests]


def facts_of(report: GradeReport, version: str, seeds: list[int], device: str) -> dict[str, Any]:
    return {
        "worker_host": platform.node(),
        "device": device,
        "isolation": clean(report.isolation, 255),
        "grader_version": GRADER_VERSION,
        "assignment_version": version,
        "seeds": seeds,
        "durations": report.durations,
        "log": report.log(),
    }
