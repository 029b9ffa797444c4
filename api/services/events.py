"""A submission's status as server-sent events, for the JSON API and the pages.

Pushed, not polled: each API process has one `StatusHub`, started with the first
stream, which listens for job status changes (core/notify.py: PostgreSQL LISTEN on one
connection, or the embedded mode's socket) and wakes the streams of that submission.
A woken stream reads the status (a short session of its own; no stream pins a pooled
connection) and sends it if it changed. An idle stream costs nothing but a keep-alive
comment now and then.

A notification can be lost (the listener reconnecting, a full buffer): every
`event_safety_seconds` the hub reads the jobs of all watched submissions in one query
and wakes those whose jobs changed, so no stream waits for ever. A stream ends after
the final status, after an hour, or when the client goes away (Starlette cancels it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.services.access import user_for, visible_submission
from api.services.presenters import score_line
from api.settings import get_api_settings
from core import notify
from core.db import get_sessionmaker
from core.jobs import FINAL_STATUSES
from core.models import GradingJob, Submission
from core.settings import get_settings

log = logging.getLogger(__name__)

MAX_SECONDS = 3600.0  # a stream lasts at most about an hour
KEEPALIVE_SECONDS = 25.0  # under the usual proxies' 60 s idle timeout
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: Submissions per query of the safety poll.
BATCH = 500


def check_access(token: str | None, submission_id: str, where: str = "header") -> None:
    """NotSignedIn/NotFound unless the token's user may see the submission (`where`: the
    token came in the Authorization header or the pages' cookie)."""
    with get_sessionmaker()() as session:
        visible_submission(session, user_for(session, token, where), submission_id)


def current_state(submission_id: str) -> tuple[dict[str, object], Hashable]:
    """What the stream sends, and the fingerprint of the jobs it was read from."""
    with get_sessionmaker()() as session:
        fingerprint = _fingerprints(session, [submission_id])[submission_id]
        submission = session.get(Submission, submission_id)
        assert submission is not None
        # Only the status and score line: not the tests, cells and counting rule of the
        # whole view (the counting rule alone reads every submission of the student).
        line = score_line(session, submission, viewer_is_staff=False)
        return {
            "id": submission_id,
            "status": line.status,
            "score": line.score,
            "max_score": line.max_score,
        }, fingerprint


def _fingerprints(session: Session, submission_ids: list[str]) -> dict[str, Hashable]:
    """(job id, status) of every job of each submission, in one query per BATCH."""
    found: dict[str, set[tuple[str, str]]] = {sid: set() for sid in submission_ids}
    for start in range(0, len(submission_ids), BATCH):
        chunk = submission_ids[start : start + BATCH]
        for sid, job_id, status in session.execute(
            select(GradingJob.submission_id, GradingJob.id, GradingJob.status).where(
                GradingJob.submission_id.in_(chunk)
            )
        ):
            found[sid].add((job_id, status))
    return {sid: frozenset(jobs) for sid, jobs in found.items()}


def job_fingerprints(submission_ids: list[str]) -> dict[str, Hashable]:
    with get_sessionmaker()() as session:
        return _fingerprints(session, submission_ids)


class StatusHub:
    """The streams of one API process, woken by notifications (one listener for all)."""

    def __init__(self, safety_seconds: float) -> None:
        self.safety_seconds = safety_seconds
        self.waiters: dict[str, set[asyncio.Event]] = {}
        #: The jobs' fingerprint each watched submission's streams last read.
        self.seen: dict[str, Hashable] = {}
        self.stopped = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        #: Notifications received (for tests and /metrics-like curiosity).
        self.received = 0
        #: Per submission: wakes so far, and the read shared by the streams of the last.
        self.generations: dict[str, int] = {}
        self.reads: dict[str, tuple[int, asyncio.Future[tuple[dict[str, object], Hashable]]]] = {}

    # -- the streams' side --------------------------------------------------------------
    def watch(self, submission_id: str) -> asyncio.Event:
        if not self.tasks:
            self.start()
        woken = asyncio.Event()
        self.waiters.setdefault(submission_id, set()).add(woken)
        return woken

    def unwatch(self, submission_id: str, woken: asyncio.Event) -> None:
        waiting = self.waiters.get(submission_id)
        if waiting is not None:
            waiting.discard(woken)
            if not waiting:
                del self.waiters[submission_id]
                for table in (self.seen, self.generations, self.reads):
                    table.pop(submission_id, None)

    async def read(self, submission_id: str) -> tuple[dict[str, object], Hashable]:
        """The submission's state, read once for all its streams woken by the same
        notification (100 streams of one submission: one read, not 100)."""
        generation = self.generations.get(submission_id, 0)
        shared = self.reads.get(submission_id)
        if (
            shared is None
            or shared[0] != generation
            or (shared[1].done() and (shared[1].cancelled() or shared[1].exception()))
        ):
            task = asyncio.ensure_future(run_in_threadpool(current_state, submission_id))
            shared = self.reads[submission_id] = (generation, task)
        state, fingerprint = await asyncio.shield(shared[1])
        self.seen[submission_id] = fingerprint
        return state, fingerprint

    # -- the notifications' side --------------------------------------------------------
    def wake(self, submission_id: str) -> None:
        self.received += 1
        waiting = self.waiters.get(submission_id)
        if waiting:
            self.generations[submission_id] = self.generations.get(submission_id, 0) + 1
            for woken in waiting:
                woken.set()

    def wake_all(self) -> None:
        for submission_id in list(self.waiters):
            self.wake(submission_id)

    def start(self) -> None:
        settings = get_settings()
        url = settings.resolved_database_url
        if url.startswith("postgresql"):
            listener = notify.listen_postgres(url, self.wake, self.wake_all, self.stopped)
        else:
            listener = notify.listen_sockets(notify.socket_folder(), self.wake, self.stopped)
        self.tasks = [
            asyncio.create_task(listener, name="status-listener"),
            asyncio.create_task(self._safety_poll(), name="status-safety-poll"),
        ]

    async def stop(self) -> None:
        self.stopped.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def _safety_poll(self) -> None:
        while not self.stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), self.safety_seconds)
            ids = list(self.waiters)
            if not ids or self.stopped.is_set():
                continue
            try:
                prints = await run_in_threadpool(job_fingerprints, ids)
            except Exception as exc:  # noqa: BLE001 - the database away: try next round
                log.warning("event streams: the safety poll failed: %s", exc)
                continue
            for sid, fingerprint in prints.items():
                # Compared with what the streams last read (they record it): a change
                # they were not told of wakes them.
                if sid in self.seen and self.seen[sid] != fingerprint:
                    self.wake(sid)


_hubs: dict[int, StatusHub] = {}


def get_hub() -> StatusHub:
    """This event loop's hub (one per API process; tests may run several loops)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(id(loop))
    if hub is None:
        hub = _hubs[id(loop)] = StatusHub(get_api_settings().event_safety_seconds)
    return hub


async def stop_hub() -> None:
    """For the app's shutdown: the listener's connection closed, its socket removed."""
    hub = _hubs.pop(id(asyncio.get_running_loop()), None)
    if hub is not None:
        await hub.stop()


async def status_events(
    submission_id: str, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    """Call only for a submission the caller may see (access.visible_submission)."""
    hub = get_hub()
    woken = hub.watch(submission_id)
    try:
        yield "retry: 1000\n\n"
        last: str | None = None
        deadline = time.monotonic() + MAX_SECONDS
        read = True
        while True:
            if read:
                woken.clear()  # before reading: a change during the read wakes us again
                state, _ = await hub.read(submission_id)
                if state["status"] != last:
                    last = str(state["status"])
                    yield f"event: status\ndata: {json.dumps(state)}\n\n"
                    if last in FINAL_STATUSES:
                        return
            left = deadline - time.monotonic()
            if left <= 0 or await disconnected():
                return
            try:
                await asyncio.wait_for(woken.wait(), min(KEEPALIVE_SECONDS, left))
                read = True
            except TimeoutError:
                read = False
                yield ": keep-alive\n\n"
    finally:
        hub.unwatch(submission_id, woken)
