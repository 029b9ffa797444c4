"""Prometheus metrics at GET /metrics.

Most numbers are read at scrape time from where the truth lives, so they are right
whichever process (API, sweeper, any worker on any machine) did the work, survive
restarts, and need no multiprocess mode:

- ``autograder_queue_depth{queue}``: messages waiting in the broker (core.queue).
- ``autograder_broker_up``, ``autograder_database_up``: 1 when they answered this scrape.
- ``autograder_jobs{queue,status}``: grading jobs by status (queued, running, graded, failed).
- ``autograder_jobs_retried``: jobs that needed more than one attempt (worker lost, ...).
- ``autograder_test_results{outcome}``: test verdicts written (passed, failed, error, ...).
- ``autograder_job_duration_seconds``: histogram of graded jobs' grading time
  (``durations.total``, measured by the worker around the whole engine run).
- ``autograder_sandbox_load_seconds``: histogram of the sandbox start plus running the
  student's cells (``durations.load``), the part a faster sandbox shrinks.
- ``autograder_job_latency_seconds``: histogram of submit (job created) to graded.

The histograms are cumulative over every graded job (a job is never deleted), so
they behave like ordinary Prometheus histograms: rate() and histogram_quantile()
work on them. They are computed by one aggregate SQL query per histogram.

Observed in the API process itself (reset when it restarts, like any counter):

- ``autograder_upload_bytes``: histogram of the request body size of accepted
  uploads (the file plus a few hundred bytes of multipart framing).
- ``autograder_upload_responses_total{code}``: upload requests by HTTP status
  (202 accepted, 503 database away, 4xx refused).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any, cast

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core import capacity
from core.db import get_sessionmaker
from core.models import GradingJob, TestResult
from core.queue import queue_depths

log = logging.getLogger("autograder.metrics")

JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300)
LOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30)
LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
UPLOAD_BUCKETS = (1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
UPLOAD_PATH = re.compile(r"^/api/v1/courses/[^/]+/assignments/[^/]+/submissions/?$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(ColumnElement[float], func.extract("epoch", end - start))


def _histogram(
    session: Session, name: str, doc: str, value: ColumnElement[float], buckets: tuple[float, ...]
) -> HistogramMetricFamily:
    """One aggregate query: cumulative bucket counts, count and sum over graded jobs."""
    columns = [func.sum(case((value <= b, 1), else_=0)) for b in buckets]
    row = session.execute(
        select(func.count(value), func.coalesce(func.sum(value), 0.0), *columns).where(
            GradingJob.status == "graded", value.is_not(None)
        )
    ).one()
    count, total = int(row[0] or 0), float(row[1] or 0.0)
    cumulative = [(_bound(b), int(n or 0)) for b, n in zip(buckets, row[2:], strict=True)]
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], [*cumulative, ("+Inf", count)], sum_value=total)
    return family


def _bound(b: float) -> str:
    return repr(float(b))


class DatabaseCollector(Collector):
    """Read at every scrape: queue depths from the broker, job counts from the database."""

    def collect(self) -> Iterable[Metric]:
        depths = queue_depths()
        broker_up = GaugeMetricFamily(
            "autograder_broker_up", "1 if the broker answered this scrape."
        )
        broker_up.add_metric([], 0.0 if all(d < 0 for d in depths.values()) else 1.0)
        yield broker_up
        depth = GaugeMetricFamily(
            "autograder_queue_depth",
            "Grading messages waiting in the broker, per queue.",
            labels=["queue"],
        )
        for queue, n in sorted(depths.items()):
            if n >= 0:
                depth.add_metric([queue], float(n))
        yield depth

        database_up = GaugeMetricFamily(
            "autograder_database_up", "1 if the database answered this scrape."
        )
        try:
            families = list(self._from_database())
        except Exception as exc:  # the database is away: say so, keep the rest
            log.warning("metrics: database unavailable: %s", exc)
            database_up.add_metric([], 0.0)
            yield database_up
            return
        database_up.add_metric([], 1.0)
        yield database_up
        yield from families

    def _from_database(self) -> Iterator[Metric]:
        with get_sessionmaker()() as session:
            live = capacity.capacity(session)
            slots = GaugeMetricFamily(
                "autograder_queue_consumer_slots",
                "Grading slots of live workers per queue (0: no consumer).",
                labels=["queue"],
            )
            for queue, count in live["slots"].items():
                slots.add_metric([queue], float(count))
            yield slots
            workers = GaugeMetricFamily("autograder_workers", "Workers with a fresh heartbeat.")
            workers.add_metric([], float(live["workers"]))
            yield workers
            jobs = GaugeMetricFamily(
                "autograder_jobs", "Grading jobs by queue and status.", labels=["queue", "status"]
            )
            seen = set()
            for queue, status, n in session.execute(
                select(GradingJob.queue, GradingJob.status, func.count()).group_by(
                    GradingJob.queue, GradingJob.status
                )
            ):
                jobs.add_metric([queue, status], float(n))
                seen.add((queue, status))
            for status in ("queued", "running", "graded", "failed"):
                if ("cpu", status) not in seen:
                    jobs.add_metric(["cpu", status], 0.0)
            retried = GaugeMetricFamily(
                "autograder_jobs_retried",
                "Jobs that needed more than one attempt (a worker was lost, the grader "
                "failed), by status.",
                labels=["status"],
            )
            for status, n in session.execute(
                select(GradingJob.status, func.count())
                .where(GradingJob.attempt > 1)
                .group_by(GradingJob.status)
            ):
                retried.add_metric([status], float(n))
            outcomes = GaugeMetricFamily(
                "autograder_test_results", "Test verdicts written, by outcome.", labels=["outcome"]
            )
            for outcome, n in session.execute(
                select(TestResult.outcome, func.count()).group_by(TestResult.outcome)
            ):
                outcomes.add_metric([outcome], float(n))
            families: list[Metric] = [jobs, retried, outcomes]
            durations = GradingJob.durations
            families.append(
                _histogram(
                    session,
                    "autograder_job_duration_seconds",
                    "Grading time of graded jobs (worker side, whole engine run).",
                    durations["total"].as_float(),
                    JOB_BUCKETS,
                )
            )
            families.append(
                _histogram(
                    session,
                    "autograder_sandbox_load_seconds",
                    "Sandbox start plus running the submission's cells, per graded job.",
                    durations["load"].as_float(),
                    LOAD_BUCKETS,
                )
            )
            families.append(
                _histogram(
                    session,
                    "autograder_job_latency_seconds",
                    "From the job's creation (the upload) to its results being written.",
                    _seconds_between(session, GradingJob.created_at, GradingJob.finished_at),
                    LATENCY_BUCKETS,
                )
            )
        yield from families


class Metrics:
    """The API process's registry: scrape-time collectors plus what it observes itself."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DatabaseCollector())
        ProcessCollector(registry=self.registry)
        self.upload_bytes = Histogram(
            "autograder_upload_bytes",
            "Request body size of accepted uploads.",
            buckets=UPLOAD_BUCKETS,
            registry=self.registry,
        )
        self.upload_responses = Counter(
            "autograder_upload_responses",
            "Upload requests answered, by HTTP status.",
            labelnames=["code"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class UploadMetricsMiddleware:
    """Counts the bytes of each upload's body and records it with the answer's status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not UPLOAD_PATH.match(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        size = 0
        status = 500

        async def counting_receive() -> Message:
            nonlocal size
            message = await receive()
            if message.get("type") == "http.request":
                size += len(message.get("body", b""))
            return message

        async def status_send(message: Message) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, counting_receive, status_send)
        finally:
            self.metrics.upload_responses.labels(code=str(status)).inc()
            if status == 202:
                self.metrics.upload_bytes.observe(size)


def install(app: FastAPI) -> Metrics:
    """Serve GET /metrics and observe uploads; call once in create_app."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(UploadMetricsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
