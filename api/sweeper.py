"""The sweeper thread: no job is left behind by a lost message or a dead worker."""

from __future__ import annotations

import logging
import threading

from core.db import get_sessionmaker
from core.jobs import sweep
from core.settings import get_settings

log = logging.getLogger("autograder.sweeper")


class Sweeper(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = get_settings().sweep_interval_seconds
        while not self.stopped.wait(interval):
            try:
                with get_sessionmaker()() as session:
                    counts = sweep(session)
                if any(counts.values()):
                    log.info("sweeper: %s", counts)
            except Exception as exc:  # database or broker away: try again next round
                log.warning("sweeper round failed: %s", exc)

    def stop(self) -> None:
        self.stopped.set()
