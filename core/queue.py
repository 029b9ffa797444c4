"""The Celery app as both sides see it: the API sends by task name, workers consume.

The API never imports worker code: it only needs the broker and the task's name.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery
from kombu.entity import Queue
from kombu.exceptions import ChannelError

from core.settings import Settings, get_settings

GRADE_TASK = "autograder.grade"
#: The self-check of an uploaded assignment (worker/selfcheck_task.py), on the cpu queue.
SELFCHECK_TASK = "autograder.selfcheck"
QUEUES = ("cpu", "gpu")
log = logging.getLogger(__name__)


def make_celery(settings: Settings) -> Celery:
    app = Celery("autograder", broker=settings.resolved_broker_url)
    transport_options: dict[str, object] = {}
    if settings.is_embedded_broker:
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
        # The filesystem transport has no fan-out exchange for remote control.
        app.conf.worker_enable_remote_control = False
    else:
        # Unacked messages come back after this; the job lease re-queues much sooner.
        transport_options = {"visibility_timeout": 3600}
    app.conf.update(
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="cpu",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings())


def send_grade(job_id: str, queue: str) -> bool:
    """Publish one grading task; False if the broker could not be reached (the sweeper
    will send it later: the job row is already committed)."""
    try:
        get_celery().send_task(GRADE_TASK, args=[job_id], queue=queue)
        return True
    except Exception as exc:  # broker down: never lose the job, never fail the upload
        log.warning(
            "could not send job %s to queue %s: %s", job_id, queue, exc, extra={"job_id": job_id}
        )
        return False


def send_selfcheck(publication_id: str) -> bool:
    """Publish one self-check task (cpu queue); False if the broker could not be reached."""
    try:
        get_celery().send_task(SELFCHECK_TASK, args=[publication_id], queue="cpu")
        return True
    except Exception as exc:  # broker down: the caller answers 503, nothing is published
        log.warning("could not send the self-check of publication %s: %s", publication_id, exc)
        return False


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue (for the sweeper and /metrics); -1 if unknown.

    A queue the broker says does not exist holds nothing: Redis deletes a list when
    its last message is taken, and a restarted Redis without persistence has none.
    Reporting those as 0 (not "unknown") is what lets the sweeper re-send the
    messages such a restart lost.
    """
    depths: dict[str, int] = {}
    app = get_celery()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            channel = conn.default_channel
            for name in QUEUES:
                try:
                    depths[name] = int(
                        channel.queue_declare(queue=name, passive=True).message_count
                    )
                except ChannelError as exc:
                    depths[name] = 0 if "NOT_FOUND" in str(exc) else -1
                except Exception:
                    depths[name] = -1
    except Exception:
        return dict.fromkeys(QUEUES, -1)
    return depths


def broker_ok() -> bool:
    try:
        with get_celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False
