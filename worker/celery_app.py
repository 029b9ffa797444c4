"""The worker's Celery app: the shared configuration plus the grading task."""

from __future__ import annotations

from core.queue import get_celery

app = get_celery()
app.conf.imports = ("worker.tasks",)
