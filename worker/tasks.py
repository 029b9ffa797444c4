"""The grading task: one delivery of a grading message, handed to
worker.grading.grade_delivered (idempotent: a job is claimed, attempt + 1, before any
work, so a second delivery of the same message finds nothing to do)."""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import Reject
from celery.signals import setup_logging as celery_setup_logging

from core.logs import job_context, setup_logging
from core.queue import GRADE_TASK
from worker.celery_app import app
from worker.devices import grading_device
from worker.grading import ClaimUnavailable, grade_delivered
from worker.presence import start_presence

start_presence()  # the worker's main process announces its queues (core/capacity.py)


@celery_setup_logging.connect
def _json_logs(loglevel: int | str | None = None, **_: Any) -> None:
    """The worker logs JSON lines (Celery's own lines too) instead of Celery's format."""
    setup_logging("worker", loglevel or logging.INFO)


@app.task(name=GRADE_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def grade_job(job_id: str) -> str:
    with job_context(job_id):
        return _grade(job_id)


def _grade(job_id: str) -> str:
    try:
        return grade_delivered(job_id, device=grading_device())
    except ClaimUnavailable as exc:  # nothing was claimed: the message goes back
        raise Reject(str(exc), requeue=True) from exc
