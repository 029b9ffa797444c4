"""Structured logs: one JSON object per line, with the grading job's id when there is one.

    {"ts": "2026-01-15T23:59:01.123Z", "level": "INFO", "logger": "autograder.worker",
     "component": "worker", "pid": 4242, "job_id": "9f0c...", "attempt": 2,
     "msg": "job 9f0c... attempt 2: graded"}

A log call names its job with ``extra={"job_id": ...}``; inside ``job_context(job_id)``
(the worker wraps each task in it) every line carries the job id without asking, even
lines from the grading engine or a library. ``setup_logging(component)`` installs the
formatter on the root logger once per process (the API and the worker call it);
``AUTOGRADER_LOG_FORMAT=text`` switches to plain lines for a person at a terminal.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_job: contextvars.ContextVar[tuple[str, int | None] | None] = contextvars.ContextVar(
    "autograder_job", default=None
)
_installed: logging.Handler | None = None

# Attributes every LogRecord has; anything else was passed in `extra` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


@contextmanager
def job_context(job_id: str, attempt: int | None = None) -> Iterator[None]:
    """Every log line inside carries this job id (and attempt, once known)."""
    token = _job.set((job_id, attempt))
    try:
        yield
    finally:
        _job.reset(token)


def set_attempt(attempt: int) -> None:
    current = _job.get()
    if current is not None:
        _job.set((current[0], attempt))


class JobContextFilter(logging.Filter):
    """Copies the current job id (and attempt) onto records that do not name one."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _job.get()
        if current is not None:
            if getattr(record, "job_id", None) is None:
                record.job_id = current[0]
            if current[1] is not None and getattr(record, "attempt", None) is None:
                record.attempt = current[1]
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str = "") -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        if self.component:
            entry["component"] = self.component
        entry["pid"] = record.process
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                entry[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, component: str = "") -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job_id = getattr(record, "job_id", None)
        return f"{line} [job {job_id}]" if job_id else line


def setup_logging(component: str, level: int | str | None = None) -> logging.Handler:
    """Send this process's log records to stderr as JSON lines (idempotent)."""
    global _installed
    root = logging.getLogger()
    if _installed is not None and _installed in root.handlers:
        return _installed
    handler = logging.StreamHandler(sys.stderr)
    text = os.environ.get("AUTOGRADER_LOG_FORMAT", "json").lower() == "text"
    handler.setFormatter(TextFormatter(component) if text else JsonFormatter(component))
    handler.addFilter(JobContextFilter())
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("AUTOGRADER_LOG_LEVEL", "INFO").upper())
    _installed = handler
    return handler
