"""The worker's heartbeat: which queues it consumes, written to the database.

The worker's main process (not its pool processes) starts a thread when Celery says
the worker is ready; every `worker_heartbeat_seconds` it refreshes the worker's row
in `workers` (core/capacity.py reads them: routing, the sweeper, /healthz). On a
clean stop the row is removed at once; a worker that dies stops refreshing it and is
taken for gone after `worker_expiry_seconds`.

The thread has an engine of its own without a connection pool, so the pool processes
Celery forks later never inherit an open database connection from it.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core import capacity
from core.queue import QUEUES
from core.settings import get_settings

log = logging.getLogger("autograder.worker")


class Presence(threading.Thread):
    def __init__(
        self, worker_id: str, queues: list[str], slots: int, device: str, interval: float
    ) -> None:
        super().__init__(name="presence", daemon=True)
        self.worker_id, self.queues, self.slots, self.device = worker_id, queues, slots, device
        self.interval = interval
        self.stopped = threading.Event()
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from core.db import make_engine

            self._engine = make_engine(get_settings().resolved_database_url, pooled=False)
        return self._engine

    def beat(self) -> None:
        with Session(self.engine) as session:
            capacity.announce(
                session, self.worker_id, platform.node(), self.queues, self.slots, self.device
            )

    def run(self) -> None:
        failing = False
        while True:
            try:
                self.beat()
                if failing:
                    log.info("presence: heartbeat written again")
                failing = False
            except Exception as exc:  # the database may blink; the next beat retries
                if not failing:
                    log.warning("presence: heartbeat failed: %s", str(exc).splitlines()[0])
                failing = True
            if self.stopped.wait(self.interval):
                return

    def stop(self) -> None:
        self.stopped.set()
        try:
            with Session(self.engine) as session:
                capacity.retire(session, self.worker_id)
        except Exception as exc:
            log.warning("presence: could not remove this worker's row: %s", exc)


_presence: Presence | None = None


def consumed_queues(sender: Any) -> list[str]:
    named = [
        q.strip() for q in os.environ.get("AUTOGRADER_WORKER_QUEUES", "").split(",") if q.strip()
    ]
    if named:
        return named
    try:
        return sorted(sender.app.amqp.queues.consume_from)
    except Exception:
        return list(QUEUES)


def _device(queues: list[str]) -> str:
    from worker.devices import visible_gpus

    gpus = visible_gpus() if "gpu" in queues else []
    return f"cuda x{len(gpus)}" if gpus else "cpu"


def _on_ready(sender: Any = None, **_: Any) -> None:
    global _presence
    if _presence is not None:
        return
    settings = get_settings()
    queues = consumed_queues(sender)
    slots = 1
    try:
        slots = int(sender.controller.concurrency)
    except Exception:  # an older Celery: one slot is a fair guess
        pass
    worker_id = f"{platform.node()}:{os.getpid()}"
    _presence = Presence(
        worker_id, queues, slots, _device(queues), settings.worker_heartbeat_seconds
    )
    _presence.start()
    log.info("presence: worker %s consumes %s (%s slot(s))", worker_id, ",".join(queues), slots)


def _on_shutdown(**_: Any) -> None:
    if _presence is not None:
        _presence.stop()


def start_presence() -> None:
    """Connect the heartbeat to the worker's start and stop (idempotent)."""
    worker_ready.connect(_on_ready, weak=False, dispatch_uid="autograder-presence-ready")
    worker_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="autograder-presence-stop")
