"""The worker's Celery app: the shared configuration plus its tasks (grading, and the
self-check of published assignments)."""

from __future__ import annotations

import logging

from billiard import current_process
from celery.signals import worker_process_init, worker_process_shutdown

from core.queue import get_celery
from worker import embedded_broker
from worker.devices import pin_slot

embedded_broker.install()  # filesystem:// (embedded mode): atomic message files
app = get_celery()
# Grading, and the self-check of assignments that instructors publish.
app.conf.imports = ("worker.tasks", "worker.selfcheck_task")
log = logging.getLogger("autograder.worker")


@worker_process_init.connect
def _pin_pool_process(**_: object) -> None:
    """Each pool process is one grading slot: pin it to its GPU (if any) first thing."""
    index = getattr(current_process(), "index", 0) or 0
    device = pin_slot(int(index))
    log.info("grading slot %s on %s", index, device)


@worker_process_shutdown.connect
def _stop_sandboxes(**_: object) -> None:
    """A pool process that ends takes its zygote and every sandbox with it."""
    from worker.sandbox import launcher

    launcher.shutdown()
