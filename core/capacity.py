"""Live capacity: which queues have a worker consuming them right now.

Each worker's main process writes a `workers` row every
`worker_heartbeat_seconds` (worker/presence.py) naming the queues it consumes; a row
not refreshed for `worker_expiry_seconds` is a worker gone. From that:
- routing: a job whose exercises ask for a GPU goes to the GPU queue while a worker
  consumes it, else to `cpu` (graded on the CPU, and the job's log says so) when
  `gpu_fallback_to_cpu` is on, else it waits on the GPU queue;
- the sweeper moves queued jobs off a queue nobody consumes onto one somebody does;
- /healthz and /metrics name the queues without consumers, and a submission's status
  says when it waits for a GPU worker.
The database (not Redis) holds it, so the embedded mode, whose broker is a folder,
works the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.models import GradingJob, WorkerPresence, utcnow
from core.queue import QUEUES
from core.settings import get_settings

log = logging.getLogger(__name__)


# -- the workers' side ----------------------------------------------------------------
def announce(
    session: Session,
    worker_id: str,
    host: str,
    queues: list[str],
    slots: int,
    device: str,
    now: datetime | None = None,
) -> None:
    """Insert or refresh this worker's row (its heartbeat); commits."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "host": host[:255],
        "queues": sorted(set(queues)),
        "slots": slots,
        "device": device[:128],
        "seen_at": now,
    }
    result = session.execute(
        update(WorkerPresence).where(WorkerPresence.id == worker_id).values(**values)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.add(WorkerPresence(id=worker_id, started_at=now, **values))
        try:
            session.commit()
            return
        except IntegrityError:  # inserted meanwhile (a second beat): refresh it
            session.rollback()
            session.execute(
                update(WorkerPresence).where(WorkerPresence.id == worker_id).values(**values)
            )
    session.commit()


def retire(session: Session, worker_id: str) -> None:
    """A worker that stops says so at once (its row goes; routing stops counting it)."""
    session.execute(delete(WorkerPresence).where(WorkerPresence.id == worker_id))
    session.commit()


# -- what everybody else asks ---------------------------------------------------------
def live_workers(session: Session, now: datetime | None = None) -> list[WorkerPresence]:
    now = now or utcnow()
    since = now - timedelta(seconds=get_settings().worker_expiry_seconds)
    return list(
        session.scalars(
            select(WorkerPresence)
            .where(WorkerPresence.seen_at >= since)
            .order_by(WorkerPresence.id)
        )
    )


def consumed_queues(session: Session, now: datetime | None = None) -> set[str]:
    """The queues some live worker consumes."""
    return {q for w in live_workers(session, now) for q in (w.queues or [])}


def queues_without_consumers(session: Session, now: datetime | None = None) -> list[str]:
    """The service's queues that no live worker consumes (for /healthz and /metrics)."""
    settings = get_settings()
    consumed = consumed_queues(session, now)
    known = dict.fromkeys([*QUEUES, settings.gpu_queue])
    return [q for q in known if q not in consumed]


def capacity(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """A summary for /healthz and /metrics: live workers, slots per queue, and the
    queues without consumers."""
    workers = live_workers(session, now)
    slots: dict[str, int] = {}
    for w in workers:
        for q in w.queues or []:
            slots[q] = slots.get(q, 0) + int(w.slots or 0)
    return {
        "workers": len(workers),
        "slots": {q: slots.get(q, 0) for q in dict.fromkeys([*QUEUES, *slots])},
        "queues_without_consumers": queues_without_consumers(session, now),
    }


def route(session: Session | None, wants_gpu: bool) -> str:
    """The queue for a new job: see the module's docstring."""
    if not wants_gpu:
        return "cpu"
    settings = get_settings()
    if not settings.gpu_fallback_to_cpu or session is None:
        return settings.gpu_queue
    if settings.gpu_queue in consumed_queues(session):
        return settings.gpu_queue
    return "cpu"


def waiting_note(session: Session, job: GradingJob, now: datetime | None = None) -> str | None:
    """What a student should read about a queued job that no worker can take now."""
    if job.status != "queued":
        return None
    consumed = consumed_queues(session, now)
    if job.queue in consumed:
        return None
    if job.queue == get_settings().gpu_queue:
        return (
            "Waiting for a GPU worker: this assignment asks for a GPU and no GPU "
            "worker is running right now; it is graded as soon as one is."
        )
    return (
        f"Waiting for a worker: none is consuming the {job.queue!r} queue right now; "
        "it is graded as soon as one is."
    )


def reroute(session: Session, now: datetime | None = None, limit: int = 500) -> list[GradingJob]:
    """Move queued jobs off queues nobody consumes onto one somebody does (the sweeper
    calls it, then sends what it moved). Returns the moved jobs; commits.

    GPU queue -> cpu only with gpu_fallback_to_cpu (graded on the CPU, the job's log
    says so); cpu -> the GPU queue when only GPU workers run (they grade CPU work too).
    """
    settings = get_settings()
    now = now or utcnow()
    consumed = consumed_queues(session, now)
    if not consumed:
        return []  # no worker at all: nowhere better to go
    moves: dict[str, str] = {}
    if settings.gpu_queue not in consumed and "cpu" in consumed and settings.gpu_fallback_to_cpu:
        moves[settings.gpu_queue] = "cpu"
    if "cpu" not in consumed and settings.gpu_queue in consumed:
        moves["cpu"] = settings.gpu_queue
    moved: list[tuple[GradingJob, str, str]] = []
    for source, target in moves.items():
        jobs = session.scalars(
            select(GradingJob)
            .where(GradingJob.status == "queued", GradingJob.queue == source)
            .order_by(GradingJob.created_at)
            .limit(limit)
        ).all()
        for job in jobs:
            result = session.execute(
                update(GradingJob)
                .where(
                    GradingJob.id == job.id,
                    GradingJob.status == "queued",
                    GradingJob.queue == source,
                    GradingJob.attempt == job.attempt,
                )
                .values(queue=target, sent_at=None)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                moved.append((job, source, target))
    session.commit()
    for job, source, target in moved:
        session.refresh(job)
        log.warning(
            "job %s moved from queue %s to %s: no live worker consumes %s",
            job.id,
            source,
            target,
            source,
            extra={"job_id": job.id},
        )
    return [job for job, _, _ in moved]
