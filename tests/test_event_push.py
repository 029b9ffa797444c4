"""Live status is pushed, not polled.

- The transports themselves (core/notify.py), in-process: a PostgreSQL notification
  reaches the listener at the commit, never before and never after a rollback; the
  embedded mode's datagrams reach a listening socket after the commit, and a socket
  whose process is gone is removed.
- Through the real API (distributed and embedded): a submission's event stream sends
  queued/running/graded and 'graded' arrives promptly after the job was finished
  (much sooner than the streams' safety poll would find it).
- Idle streams cost (next to) nothing: 50 open streams on the distributed API over a
  few seconds use a small fraction of a core (the old 0.1 s poll: most of one).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from core import notify
from core.db import make_engine
from core.models import GradingJob
from tests.support.paths import HW1
from tests.support.stack import (
    PG_ADMIN_URL,
    Stack,
    create_database,
    database_url,
    drop_database,
)
from tests.support.staffing import hw1_source, parse_time, stack_db, wait_graded

# -- the transports ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    name = create_database()
    try:
        yield database_url(PG_ADMIN_URL, name)
    finally:
        drop_database(name)


async def _woken_by(start_listener, publish) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    """Start a listener, run `publish` (a function of a callback that waits until the
    listener had time to see what was sent), return what it received before/after."""
    received: list[str] = []
    connected = asyncio.Event()
    stopped = asyncio.Event()
    task = asyncio.create_task(start_listener(received.append, connected.set, stopped))
    await asyncio.wait_for(connected.wait(), 10)
    marks: list[list[str]] = []

    async def settle(seconds: float = 0.5) -> None:
        await asyncio.sleep(seconds)
        marks.append(list(received))

    await publish(settle)
    stopped.set()
    await asyncio.wait_for(task, 10)
    return marks[0], marks[-1]


def test_postgres_notifications_arrive_with_the_commit_only(pg_url: str) -> None:
    engine = make_engine(pg_url)

    async def listener(wake, connected, stopped):  # type: ignore[no-untyped-def]
        await notify.listen_postgres(pg_url, wake, connected, stopped)

    async def publish(settle) -> None:  # type: ignore[no-untyped-def]
        with Session(engine) as session:
            notify.job_changed(session, "a" * 32)
            await settle()  # not yet committed: nothing may arrive
            session.commit()
        with Session(engine) as session:
            notify.job_changed(session, "b" * 32)
            session.rollback()
        started = time.monotonic()
        await settle(0.3)
        assert time.monotonic() - started < 1

    try:
        before, after = asyncio.run(_woken_by(listener, publish))
    finally:
        engine.dispose()
    assert before == []
    assert after == ["a" * 32], "the committed notification (only) arrives"


def test_postgres_listener_reconnects_and_says_so(pg_url: str) -> None:
    """A listener whose connection is killed connects again and calls on_connect (the
    streams then read their status again: nothing missed meanwhile stays missed)."""
    engine = make_engine(pg_url)
    connects: list[float] = []
    received: list[str] = []

    async def run() -> None:
        stopped = asyncio.Event()
        task = asyncio.create_task(
            notify.listen_postgres(
                pg_url,
                received.append,
                lambda: connects.append(time.monotonic()),
                stopped,
                retry_seconds=0.2,
            )
        )
        deadline = time.monotonic() + 10
        while not connects and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN %' AND datname = current_database()"
                )
            )
        while len(connects) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with Session(engine) as session:
            notify.job_changed(session, "c" * 32)
            session.commit()
        while not received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stopped.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(run())
    finally:
        engine.dispose()
    assert len(connects) == 2, connects
    assert received == ["c" * 32]


def test_embedded_datagrams_after_the_commit_and_stale_sockets_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "notify"
    monkeypatch.setattr(notify, "socket_folder", lambda: folder)
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    stale = folder / "999999-dead.sock"

    async def listener(wake, connected, stopped):  # type: ignore[no-untyped-def]
        asyncio.get_running_loop().call_later(0.2, connected)
        await notify.listen_sockets(folder, wake, stopped)

    async def publish(settle) -> None:  # type: ignore[no-untyped-def]
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:  # bound, then gone
            dead.bind(str(stale))
        with Session(engine) as session:
            notify.job_changed(session, "d" * 32)
            await settle()
            session.commit()
        with Session(engine) as session:
            notify.job_changed(session, "e" * 32)
            session.rollback()
        await settle(0.3)

    try:
        before, after = asyncio.run(_woken_by(listener, publish))
    finally:
        engine.dispose()
    assert before == [] and after == ["d" * 32]
    assert not stale.exists(), "a socket nobody listens on is removed"
    assert list(folder.iterdir()) == [], "the listener removes its socket when it stops"


# -- through the API ----------------------------------------------------------------------


def read_events(
    stack: Stack,
    user: str,
    submission_id: str,
    out: list[tuple[float, str, str]],
    done: threading.Event,
) -> None:
    """Collect (time received, event, data) of the stream until it ends."""
    with (
        stack.client(user) as c,
        c.stream("GET", f"/api/v1/submissions/{submission_id}/events", timeout=120) as r,
    ):
        assert r.status_code == 200
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((time.time(), event, line[6:]))
    done.set()


def test_the_stream_delivers_graded_promptly(any_stack: Stack) -> None:
    slow = b"# %%\nimport time\ntime.sleep(1.5)\n" + hw1_source()  # the stream opens first
    with any_stack.client("alice") as c:
        r = c.post(
            f"/api/v1/courses/dlp/assignments/{HW1}/submissions", files={"file": ("hw1.py", slow)}
        )
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    events: list[tuple[float, str, str]] = []
    done = threading.Event()
    reader = threading.Thread(target=read_events, args=(any_stack, "alice", sid, events, done))
    reader.start()
    assert done.wait(180), f"the stream did not end: {events}"
    reader.join()
    statuses = [data for _, _, data in events]
    assert '"graded"' in statuses[-1] and len(statuses) >= 2, statuses
    with any_stack.client("tina") as c:
        job = c.get(f"/api/v1/submissions/{sid}/jobs").json()[-1]
    finished = parse_time(job["finished_at"]).timestamp()
    delay = events[-1][0] - finished
    # The safety poll runs every 5 s: a delivery this quick came from a notification.
    assert delay < 1.5, f"'graded' arrived {delay:.2f} s after the job finished"


def api_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def streaming_submission(stack: Stack, user: str) -> Iterator[str]:
    """A graded submission of `user` with a job held `running` while the caller's streams
    are open (so they stay open), failed again afterwards."""
    with stack.client(user) as c:
        r = c.post(
            f"/api/v1/courses/dlp/assignments/{HW1}/submissions",
            files={"file": ("hw1.py", hw1_source())},
        )
    assert r.status_code == 202
    sid = r.json()["id"]
    wait_graded(stack, user, sid)
    with stack_db(stack) as db:
        stuck = GradingJob(
            submission_id=sid,
            status="running",
            attempt=1,
            reason="test",
            lease_expires_at=datetime(2100, 1, 1, tzinfo=UTC),
        )
        db.add(stuck)
        db.flush()
        stuck_id = stuck.id
    try:
        yield sid
    finally:
        with stack_db(stack) as db:
            db.execute(
                update(GradingJob)
                .where(GradingJob.id == stuck_id)
                .values(status="failed", error="test", lease_expires_at=None)
            )


def test_idle_streams_cost_next_to_nothing(pg_stack: Stack) -> None:

    async def idle(streams: int, seconds: float) -> float:
        headers = {"Authorization": f"Bearer {pg_stack.tokens['bob']}"}
        limits = httpx.Limits(max_connections=streams + 5)
        async with httpx.AsyncClient(
            base_url=pg_stack.base_url, timeout=60, limits=limits, headers=headers
        ) as client:
            opened: list[httpx.Response] = []

            async def open_one() -> None:
                req = client.build_request("GET", f"/api/v1/submissions/{sid}/events")
                response = await client.send(req, stream=True)
                assert response.status_code == 200
                opened.append(response)

            await asyncio.gather(*(open_one() for _ in range(streams)))
            await asyncio.sleep(1.0)  # each stream has read and sent its first status
            pid = pg_stack.procs["api"].pid
            before, started = api_cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(seconds)
            used = (api_cpu_seconds(pid) - before) / (time.monotonic() - started)
            for response in opened:
                await response.aclose()
            return used

    with streaming_submission(pg_stack, "bob") as sid:
        share = asyncio.run(idle(50, 4.0))
    # The API's sweeper (every second here) runs meanwhile; 50 streams polling every
    # 0.1 s cost most of a core.
    assert share < 0.10, f"50 idle streams used {share:.1%} of a core"


def test_a_burst_of_page_streams_does_not_run_the_pool_dry(pg_stack: Stack) -> None:
    """120 pages open their event stream at once (more than the connection pool and the
    thread pool hold): every stream opens, and the service answers meanwhile."""

    async def burst(streams: int) -> tuple[list[int], list[int]]:
        cookies = {"ag_session": pg_stack.tokens["alice"]}
        limits = httpx.Limits(max_connections=streams + 10)
        async with httpx.AsyncClient(
            base_url=pg_stack.base_url, timeout=60, limits=limits, cookies=cookies
        ) as client:
            opened: list[httpx.Response] = []

            async def open_one() -> int:
                req = client.build_request("GET", f"/ui/submissions/{sid}/events")
                response = await client.send(req, stream=True)
                opened.append(response)
                return response.status_code

            async def probe() -> int:
                await asyncio.sleep(0.2)
                return (await client.get("/healthz")).status_code

            codes = await asyncio.gather(*(open_one() for _ in range(streams)))
            probes = await asyncio.gather(*(probe() for _ in range(3)))
            for response in opened:
                await response.aclose()
            return list(codes), list(probes)

    with streaming_submission(pg_stack, "alice") as sid:
        codes, probes = asyncio.run(burst(120))
    assert codes == [200] * 120, sorted(set(codes))
    assert probes == [200] * 3, probes
