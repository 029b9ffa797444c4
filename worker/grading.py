"""Grading one job in the worker: from the job row to stored results.

Loads the submission's bytes and the assignment version the job names (its bundle)
from the service's blob store, through the worker's local cache (worker/content.py),
runs the engine with a sandbox per job, and turns the report into rows for
core.jobs.finish. No HTTP, no Celery here: the task wraps it.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.blobs import get_blob_store
from core.jobs import ResultRow
from core.settings import get_settings
from graders.course import load_assignment
from graders.intake import MODEL_KINDS
from graders.runner import FEEDBACK_CHARS, GRADER_VERSION, GradeLimits, GradeReport, grade
from protocol.text import clean
from worker.content import MissingContent, local_cache
from worker.sandbox.launcher import sandbox_factory

MODEL_SUFFIX = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}


@dataclass(frozen=True)
class JobInput:
    assignment_slug: str
    file_kind: str
    sha256: str
    exercise_slugs: list[str] | None
    #: The version the job names and its bundle in the blob store. Without either
    #: (benches, tools), the assignment is read from settings.course_dir.
    assignment_version: str | None = None
    bundle_sha256: str | None = None


def assignment_folder(job: JobInput) -> Path:
    """The folder to grade with: the job's version, fetched and unpacked in the cache."""
    if job.bundle_sha256:
        return local_cache().assignment_folder(get_blob_store(), job.bundle_sha256,
                                               job.assignment_slug, job.assignment_version)
    if job.assignment_version:
        raise MissingContent(f"{job.assignment_slug} version {job.assignment_version} has no "
                             "bundle in the database (`autograder migrate` stores the "
                             "course's)")
    return get_settings().course_dir / job.assignment_slug


def run_job(job: JobInput, device: str = "cpu") -> tuple[list[ResultRow], dict[str, Any]]:
    settings = get_settings()
    loaded = load_assignment(assignment_folder(job))
    data = local_cache().read_blob(get_blob_store(), job.sha256)
    workdir = Path(tempfile.mkdtemp(prefix="job-"))
    try:
        model_path = None
        if job.file_kind in MODEL_KINDS:
            model_path = "submission" + MODEL_SUFFIX[job.file_kind]
            (workdir / model_path).write_bytes(data)
        workdir.chmod(0o755)
        graded = [e for e in loaded.meta.exercises
                  if job.exercise_slugs is None or e.slug in job.exercise_slugs]
        factory = sandbox_factory(
            public_dirs=(loaded.meta.public_dir,), submission_dir=workdir, device=device,
            memory_mb=max((e.memory_mb or 0 for e in graded), default=0) or None,
        )
        limits = GradeLimits(
            cell_timeout=settings.sandbox_cell_timeout,
            call_timeout=settings.sandbox_call_timeout,
            job_timeout=settings.sandbox_job_timeout,
        )
        report = grade(loaded, job.file_kind, data, factory, only=job.exercise_slugs,
                       limits=limits, model_path=model_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    facts = facts_of(report, loaded.meta.version, loaded.seeds, device)
    gpu_exercises = [e for e in report.exercises if loaded.exercises[e].device == "gpu"]
    if gpu_exercises and device == "cpu":
        facts["log"]["notes"] = [
            f"{', '.join(gpu_exercises)} asks for a GPU; this worker has none, so it was "
            "graded on the CPU (same tests, same tolerances)."
        ]
    return rows_of(report), facts


def rows_of(report: GradeReport) -> list[ResultRow]:
    return [
        # Capped again where it is stored: storage per job is bounded whatever the
        # submission did (protocol.text.clean also drops NUL, which PostgreSQL refuses).
        ResultRow(t.exercise, t.name, t.outcome, t.score, t.max_score, t.visibility,
                  clean(t.feedback, FEEDBACK_CHARS))
        for t in report.tests
    ]


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
