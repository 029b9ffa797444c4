"""Idle event streams: the API's CPU with 1,000 open streams, and how fast a status
change reaches them.

    .venv/bin/python bench/events_bench.py                       # both modes, 1000 streams
    .venv/bin/python bench/events_bench.py --mode distributed --streams 1000 --windows 5

Distributed: its own PostgreSQL cluster and redis-server (never the shared ones) and
`autograder serve` without workers; embedded: `autograder up` in a temporary data dir.
A student uploads --submissions files; each gets a job that stays `running` (written
in the database), so its streams stay open; --streams streams are opened over them
(GET /api/v1/submissions/{id}/events, a minimal HTTP/1.1 client: this machine's CPU
is the server's too). Once each stream has sent its first status:

- idle: the API process's CPU (all its processes) over --windows windows of
  --window seconds, as a share of one core: median and spread (min - max). Target
  (issue 18): under 5 % of a core for 1,000 streams;
- push: each submission's job is then finished the way a worker does (the status
  change and its notification in one transaction, core/notify.py) and the time until
  each of its streams has sent the new status is taken: p50, p99, max. The floor it
  names: the same notification received by a bare listener in this process (a
  LISTEN connection, or a socket in the embedded mode's notify folder); printed as a
  ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import Engine, update  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.proc_cpu import cpu_seconds  # noqa: E402
from bench.rush_bench import ANSWERS  # noqa: E402
from core import notify  # noqa: E402
from core.accounts import add_user  # noqa: E402
from core.db import make_engine  # noqa: E402
from core.models import GradingJob  # noqa: E402
from core.settings import get_settings  # noqa: E402
from tests.support.stack import (  # noqa: E402
    PostgresCluster,
    RedisServer,
    Stack,
    distributed_stack,
    embedded_stack,
)

HW1 = "hw1-training-basics"
FAR = datetime(2100, 1, 1, tzinfo=UTC)


class Stream:
    """One event stream over a raw connection; `statuses` and when each arrived."""

    def __init__(self, host: str, port: int, token: str, submission_id: str) -> None:
        self.host, self.port, self.token, self.sid = host, port, token, submission_id
        self.statuses: list[tuple[float, str]] = []
        self.first = asyncio.Event()
        self.ended = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            (
                f"GET /api/v1/submissions/{self.sid}/events HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {self.token}"
                "\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        try:
            status = int((await reader.readline()).split()[1])
            assert status == 200, status
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            buffer = b""
            while True:  # chunked transfer encoding
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    break
                buffer += await reader.readexactly(size + 2)
                buffer = buffer[:-2] if buffer.endswith(b"\r\n") else buffer
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    for line in event.split(b"\n"):
                        if line.startswith(b"data: "):
                            self.statuses.append(
                                (time.perf_counter(), json.loads(line[6:])["status"])
                            )
                            self.first.set()
        finally:
            self.ended.set()
            writer.close()


def api_pid(stack: Stack) -> int:
    """The API's process: `serve`'s own, or in embedded mode `up`'s child that serves."""
    if "api" in stack.procs:
        return stack.procs["api"].pid
    up = stack.procs["up"].pid
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == up and b"serve" in cmdline:
                return int(entry)
    raise RuntimeError("no API process under `autograder up`")


def stuck_submissions(stack: Stack, engine: Engine, token: str, count: int) -> list[str]:
    """`count` submissions whose latest job stays running (their streams stay open)."""
    ids = []
    with httpx.Client(
        base_url=stack.base_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for i in range(count):
            r = client.post(
                f"/api/v1/courses/dlp/assignments/{HW1}/submissions",
                files={"file": ("hw1.py", f"# %%\nn = {i}\n{ANSWERS}".encode())},
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
    time.sleep(3)  # the embedded worker grades them meanwhile; the new jobs come after
    with Session(engine) as session:
        for sid in ids:
            session.add(
                GradingJob(
                    submission_id=sid,
                    status="running",
                    attempt=1,
                    reason="events bench",
                    lease_expires_at=FAR,
                    created_at=datetime.now(UTC),
                )
            )
        session.commit()
    return ids


async def measure(
    stack: Stack,
    engine: Engine,
    token: str,
    ids: list[str],
    streams: int,
    windows: int,
    window: float,
    floor_listener: str,
    open_batch: int,
) -> dict[str, object]:
    host, port = stack.base_url.split("://", 1)[1].rsplit(":", 1)
    pid = api_pid(stack)
    before, started = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(window)
    no_streams = (cpu_seconds(pid) - before) / (time.perf_counter() - started)
    opened = [Stream(host, int(port), token, ids[k % len(ids)]) for k in range(streams)]
    tasks: list[asyncio.Task[None]] = []
    for start in range(0, streams, open_batch):  # a batch at a time: the listen backlog
        batch = opened[start : start + open_batch]
        tasks += [asyncio.create_task(s.run()) for s in batch]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.first.wait() for s in batch)), 60)
        except TimeoutError:
            failed = [t.exception() for t in tasks if t.done() and t.exception()]
            raise RuntimeError(f"streams did not start: {failed[:3]}") from None
    await asyncio.sleep(2)
    shares = []
    for _ in range(windows):
        before, started = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(window)
        shares.append((cpu_seconds(pid) - before) / (time.perf_counter() - started))

    # push: finish each submission's job as a worker does; time each stream's news
    floor_delays: list[float] = []
    received: asyncio.Queue[float] = asyncio.Queue()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if floor_listener == "postgres":
        connected = asyncio.Event()
        listener = asyncio.create_task(
            notify.listen_postgres(
                str(engine.url.render_as_string(hide_password=False)),
                lambda _: received.put_nowait(time.perf_counter()),
                connected.set,
                stop,
            )
        )
        await asyncio.wait_for(connected.wait(), 10)
    else:
        listener = asyncio.create_task(
            notify.listen_sockets(
                notify.socket_folder(), lambda _: received.put_nowait(time.perf_counter()), stop
            )
        )
        await asyncio.sleep(0.5)
    delays: list[float] = []
    for sid in ids:
        watching = [s for s in opened if s.sid == sid]
        published = await loop.run_in_executor(None, finish, engine, sid)
        floor_delays.append(await asyncio.wait_for(received.get(), 10) - published)
        await asyncio.wait_for(asyncio.gather(*(s.ended.wait() for s in watching)), 30)
        delays += [s.statuses[-1][0] - published for s in watching if s.statuses[-1][1] == "failed"]
    stop.set()
    await asyncio.wait_for(listener, 10)
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "shares": shares,
        "delays": sorted(delays),
        "floor": sorted(floor_delays),
        "streams": streams,
        "no_streams": no_streams,
    }


def finish(engine: Engine, submission_id: str) -> float:
    """The stuck job ends (failed), with its notification, in one transaction."""
    with Session(engine) as session:
        session.execute(
            update(GradingJob)
            .where(GradingJob.submission_id == submission_id, GradingJob.reason == "events bench")
            .values(status="failed", error="events bench", lease_expires_at=None)
        )
        notify.job_changed(session, submission_id)
        started = time.perf_counter()
        session.commit()
        return started


def report(mode: str, figures: dict[str, object]) -> None:
    shares = [100 * s for s in figures["shares"]]  # type: ignore[attr-defined]
    delays = [1e3 * d for d in figures["delays"]]  # type: ignore[attr-defined]
    floor = [1e3 * d for d in figures["floor"]]  # type: ignore[attr-defined]
    median_share = statistics.median(shares)
    print(
        f"{mode}: {figures['streams']} idle streams: API CPU {median_share:.2f} % of a "
        f"core (min {min(shares):.2f}, max {max(shares):.2f}, {len(shares)} windows); "
        f"target < 5 %: {median_share / 5:.2f} of it; with no stream open "
        f"{100 * float(figures['no_streams']):.2f} % (the sweeper)"
    )  # type: ignore[arg-type]
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
    print(
        f"{mode}: status change to stream: p50 {statistics.median(delays):.1f} ms, "
        f"p99 {p99:.1f} ms, max {delays[-1]:.1f} ms ({len(delays)} streams); floor "
        f"(a bare listener, same notification) median {statistics.median(floor):.1f} ms; "
        f"ratio {statistics.median(delays) / max(statistics.median(floor), 1e-3):.1f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["distributed", "embedded", "both"], default="both")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--submissions", type=int, default=10)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--open-batch", type=int, default=100, help="streams opened at once")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the streams' sockets
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for mode in ["distributed", "embedded"] if args.mode == "both" else [args.mode]:
        workdir = Path(tempfile.mkdtemp(prefix="events-bench-"))
        pg = redis = None
        if mode == "distributed":
            pg, redis = PostgresCluster().init(), RedisServer()
            pg.start()
            redis.start()
            stack = distributed_stack(
                workdir,
                workers=0,
                pg_admin_url=pg.admin_url,
                broker_url=redis.url,
                extra_env={"AUTOGRADER_SWEEP_INTERVAL_SECONDS": "5"},
            )
            url = stack.env["AUTOGRADER_DATABASE_URL"]
        else:
            stack = embedded_stack(workdir)
            url = f"sqlite:///{stack.env['AUTOGRADER_DATA_DIR']}/autograder.db"
            os.environ["AUTOGRADER_DATA_DIR"] = stack.env["AUTOGRADER_DATA_DIR"]
            get_settings.cache_clear()  # notify.socket_folder(): the stack's data dir
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                token = add_user(session, "watcher", "student", "dlp")
                session.commit()
            ids = stuck_submissions(stack, engine, token, args.submissions)
            figures = asyncio.run(
                measure(
                    stack,
                    engine,
                    token,
                    ids,
                    args.streams,
                    args.windows,
                    args.window,
                    "postgres" if mode == "distributed" else "sockets",
                    args.open_batch,
                )
            )
            report(mode, figures)
            print(f"  load average after: {os.getloadavg()[0]:.2f}")
        finally:
            stack.stop()
            engine.dispose()
            if redis is not None:
                redis.destroy()
            if pg is not None:
                pg.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
