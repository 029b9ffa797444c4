"""The embedded broker (worker/embedded_broker.py) and `autograder up`'s supervision of
its worker, with real processes:

- kombu's own filesystem transport delivers a file that is still being written (and
  loses it); ours waits for it, and sets aside a file that never becomes a message;
- producer and consumer processes hammering one broker folder: thousands of messages
  of varied sizes, none lost, none delivered twice, none undecodable;
- `autograder up` restarts its worker when it is killed (the API keeps serving), the
  job it was grading is graded once, and a submission made afterwards is graded;
- 500 submissions through `autograder up` with two slots, in bursts of 50 concurrent
  uploads: the worker never dies, every submission is graded exactly once;
- SIGTERM stops `autograder up` and leaves no process behind.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import filesystem
from sqlalchemy.orm import Session

from core.accounts import add_user
from core.db import make_engine
from graders.notebooks import with_extra_cell
from tests.support.notebooks import course_notebook
from tests.support.paths import HW1, ROOT
from tests.support.stack import Stack, base_env, dump, free_port, wait_http
from worker import embedded_broker

LEASE = 8.0  # AUTOGRADER_LEASE_SECONDS of the `up` below: a killed job is re-queued soon


# -- the transport on its own ---------------------------------------------------------


def broker_options(folder: Path) -> dict[str, Any]:
    """The transport options core/queue.py gives the embedded broker."""
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }


def connect(folder: Path, transport: type = embedded_broker.Transport) -> Connection:
    return Connection(
        "filesystem://", transport=transport, transport_options=broker_options(folder)
    )


def a_message_file(folder: Path, body: dict[str, Any]) -> bytes:
    """The bytes of one real message file (published with our transport to `folder`)."""
    with connect(folder) as conn:
        conn.Producer().publish(body, exchange="", routing_key="scratch")
    [path] = (folder / "queue").glob("*.scratch.msg")
    raw = path.read_bytes()
    path.unlink()
    return raw


@pytest.mark.fast
def test_a_file_being_written_is_not_read_and_a_broken_one_set_aside(tmp_path: Path) -> None:
    raw = a_message_file(tmp_path, {"job": "j1"})
    queue = tmp_path / "queue"

    # What kombu's writer leaves between its open() and its write(): an empty file under
    # the final name. kombu's reader takes it, fails to decode it, and the message is gone.
    (queue / embedded_broker.message_name("q")).write_bytes(b"")
    with connect(tmp_path, filesystem.Transport) as conn, pytest.raises(json.JSONDecodeError):
        conn.default_channel.basic_get("q", no_ack=True)
    assert not list(queue.glob("*.q.msg")), "kombu's reader kept the file it could not read"

    # Ours leaves a young partial file in place, and delivers it once it is whole.
    partial = queue / embedded_broker.message_name("q")
    partial.write_bytes(raw[: len(raw) // 2])
    with connect(tmp_path) as conn:
        channel = conn.default_channel
        assert channel.basic_get("q", no_ack=True) is None
        assert partial.exists()
        partial.write_bytes(raw)
        message = channel.basic_get("q", no_ack=True)
        assert message is not None and message.decode() == {"job": "j1"}
        assert not partial.exists()

        # A file that stays broken (a writer killed half-way) goes to the quarantine
        # folder, the messages after it are delivered, and nothing is raised.
        broken = queue / embedded_broker.message_name("q")
        broken.write_bytes(raw[:40])
        old = time.time() - 2 * embedded_broker.NOT_READY_GRACE_SECONDS
        os.utime(broken, (old, old))
        not_a_message = queue / embedded_broker.message_name("q")
        not_a_message.write_bytes(b"[1, 2]")  # JSON, but not a message
        os.utime(not_a_message, (old, old))
        conn.Producer().publish({"job": "j2"}, exchange="", routing_key="q")
        message = channel.basic_get("q", no_ack=True)
        assert message is not None and message.decode() == {"job": "j2"}
        assert channel.basic_get("q", no_ack=True) is None
    assert len(os.listdir(tmp_path / "corrupt")) == 2
    assert not os.listdir(queue) and not os.listdir(tmp_path / "claimed")
    assert not os.listdir(tmp_path / "staging")


@pytest.mark.fast
def test_a_put_wakes_a_waiting_consumer_before_its_next_poll(tmp_path: Path) -> None:
    """With a 30 s polling interval, a message put by another connection is delivered
    at once: the put sends a datagram to the consumer's socket in the wake folder."""
    options = broker_options(tmp_path) | {"polling_interval": 30.0}
    received: list[tuple[Any, float]] = []
    queue = Queue("wakeq", Exchange("wakeq", type="direct"), routing_key="wakeq")
    with Connection(
        "filesystem://", transport=embedded_broker.Transport, transport_options=options
    ) as consumer_conn:
        consumer = consumer_conn.Consumer(
            [queue], callbacks=[lambda body, message: received.append((body, time.monotonic()))]
        )
        consumer.consume()
        waiting = threading.Thread(target=lambda: consumer_conn.drain_events(timeout=20))
        waiting.start()
        time.sleep(0.5)  # the consumer is inside its wait now
        sockets = list((tmp_path / "wake").glob("*.sock"))
        with Connection(
            "filesystem://", transport=embedded_broker.Transport, transport_options=options
        ) as producer_conn:
            sent = time.monotonic()
            producer_conn.Producer().publish(
                {"job": "w1"}, exchange=queue.exchange, routing_key="wakeq", declare=[queue]
            )
        waiting.join(25)
        consumer.cancel()
    assert sockets, "the consumer has no wake-up socket"
    assert [body for body, _ in received] == [{"job": "w1"}]
    assert received[0][1] - sent < 10, "delivered only at the next poll"


@pytest.mark.fast
def test_install_makes_filesystem_urls_use_it(tmp_path: Path) -> None:
    """The worker's Celery app (and anything after install()) gets our transport."""
    code = (
        "from worker.celery_app import app\n"
        "with app.connection_for_write() as conn:\n"
        "    print(type(conn.transport).__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=base_env(tmp_path),
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.split()[-1] == "worker.embedded_broker", out.stdout + out.stderr


HAMMER_QUEUE = Queue("hammer", Exchange("hammer", "direct"), routing_key="hammer")


def _produce(folder: str, producer: int, count: int, go: Any) -> None:
    rng = random.Random(producer)
    go.wait()
    with connect(Path(folder)) as conn:
        publish = conn.Producer().publish
        for i in range(count):
            roll = rng.random()
            size = (
                rng.randint(1 << 18, 1 << 20)
                if roll < 0.04
                else rng.randint(2048, 65536)
                if roll < 0.3
                else rng.randint(0, 2048)
            )
            pad = rng.randbytes(size // 2).hex()
            publish(
                {
                    "id": f"{producer}-{i}",
                    "pad": pad,
                    "sha": hashlib.sha256(pad.encode()).hexdigest(),
                },
                exchange=HAMMER_QUEUE.exchange,
                routing_key="hammer",
                declare=[HAMMER_QUEUE],
            )


def _consume(folder: str, total: int, taken: Any, go: Any, results: Any) -> None:
    got: list[str] = []
    problems: list[str] = []
    go.wait()
    try:
        with connect(Path(folder)) as conn:
            channel = conn.default_channel
            HAMMER_QUEUE(channel).declare()
            deadline = time.monotonic() + 120
            while taken.value < total and time.monotonic() < deadline:
                message = channel.basic_get("hammer", no_ack=True)
                if message is None:
                    time.sleep(0.002)
                    continue
                body = message.decode()
                if hashlib.sha256(body["pad"].encode()).hexdigest() != body["sha"]:
                    problems.append(f"{body['id']}: content differs")
                got.append(body["id"])
                with taken.get_lock():
                    taken.value += 1
    except Exception as exc:  # reported to the test, which fails on it
        problems.append(f"{type(exc).__name__}: {exc}")
    results.put((got, problems))


def test_concurrent_producers_and_consumers_lose_and_repeat_nothing(tmp_path: Path) -> None:
    producers, per_producer, consumers = 4, 800, 3
    total = producers * per_producer
    ctx = mp.get_context("fork")
    go, taken, results = ctx.Event(), ctx.Value("i", 0), ctx.Queue()
    procs = [
        ctx.Process(target=_produce, args=(str(tmp_path), p, per_producer, go))
        for p in range(producers)
    ]
    procs += [
        ctx.Process(target=_consume, args=(str(tmp_path), total, taken, go, results))
        for _ in range(consumers)
    ]
    for proc in procs:
        proc.start()
    started = time.perf_counter()
    go.set()  # all at once: the exchange table is created by several of them together
    outcomes = [results.get(timeout=150) for _ in range(consumers)]
    wall = time.perf_counter() - started
    for proc in procs:
        proc.join(30)
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]

    problems = [p for _, ps in outcomes for p in ps]
    assert not problems, problems[:10]
    delivered = Counter(i for got, _ in outcomes for i in got)
    twice = [i for i, n in delivered.items() if n > 1]
    sent = {f"{p}-{i}" for p in range(producers) for i in range(per_producer)}
    assert not twice, f"delivered more than once: {twice[:10]}"
    assert set(delivered) == sent, f"lost: {sorted(sent - set(delivered))[:10]}"
    for sub in ("queue", "staging", "claimed"):
        assert not os.listdir(tmp_path / sub), f"left in {sub}/: {os.listdir(tmp_path / sub)}"
    assert not (tmp_path / "corrupt").exists() or not os.listdir(tmp_path / "corrupt")
    per_consumer = [len(got) for got, _ in outcomes]
    print(
        f"\nhammer: {total} messages from {producers} producer processes to {consumers} "
        f"consumer processes in {wall:.1f} s, each delivered once ({per_consumer})"
    )


# -- `autograder up` ----------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def process_tree(pid: int) -> dict[int, str]:
    """pid and its descendants -> their start time (to tell a reused pid apart)."""
    tree: dict[int, str] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        started = start_time(p)
        if started:
            tree[p] = started
            todo.extend(children_of(p))
    return tree


def start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def alive(pid: int, started: str) -> bool:
    if start_time(pid) != started:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def worker_pids(stack: Stack) -> list[int]:
    """The worker pids `autograder up` reported, in order (started, then restarted)."""
    return [
        int(m)
        for m in re.findall(
            r"^autograder up: worker (?:started|restarted) "
            r"\(pid (\d+)",
            stack.log("up"),
            re.M,
        )
    ]


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout} s")


class Up:
    """`autograder up` with two worker slots, and its SQLite database to look into."""

    def __init__(self, workdir: Path) -> None:
        env = base_env(workdir)
        env.update(
            AUTOGRADER_WORKER_SLOTS="2",
            AUTOGRADER_LEASE_SECONDS=str(LEASE),
            AUTOGRADER_RESEND_AFTER_SECONDS="10",
        )
        port = free_port()
        self.stack = Stack(base_url=f"http://127.0.0.1:{port}", env=env, workdir=workdir)
        self.data = workdir / "var"
        self.proc = self.stack.start("up", "up", "--port", str(port))
        try:
            wait_http(f"{self.stack.base_url}/healthz", timeout=120, proc=self.proc)
            for line in self.stack.log("up").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[2].startswith("ag_"):
                    self.stack.tokens[parts[0]] = parts[2]
        except BaseException:
            self.stack.stop()
            raise

    def add_students(self, prefix: str, n: int) -> list[str]:
        """n enrolled students with tokens, written straight to the database (fast);
        hw1 allows 30 submissions a day per student."""
        engine = make_engine(f"sqlite:///{self.data / 'autograder.db'}")
        names = [f"{prefix}{i}" for i in range(n)]
        try:
            with Session(engine) as session:
                for name in names:
                    self.stack.tokens[name] = add_user(session, name, "student", self.stack.course)
                session.commit()
        finally:
            engine.dispose()
        return names

    def jobs(self, submission_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """submission id -> its jobs: status, attempt and how many results each wrote."""
        out: dict[str, list[dict[str, Any]]] = {sid: [] for sid in submission_ids}
        marks = ",".join("?" * len(submission_ids))
        with sqlite3.connect(self.data / "autograder.db", timeout=30) as db:
            rows = db.execute(
                "SELECT j.id, j.submission_id, j.status, j.attempt, j.score, j.max_score, "
                "(SELECT COUNT(*) FROM test_results r WHERE r.job_id = j.id) "
                f"FROM grading_jobs j WHERE j.submission_id IN ({marks})",
                submission_ids,
            ).fetchall()
        db.close()
        for job_id, sid, status, attempt, score, max_score, results in rows:
            out[sid].append(
                {
                    "id": job_id,
                    "status": status,
                    "attempt": attempt,
                    "score": score,
                    "max_score": max_score,
                    "results": results,
                }
            )
        return out

    def wait_all_final(
        self, submission_ids: list[str], timeout: float
    ) -> dict[str, list[dict[str, Any]]]:
        def done() -> dict[str, list[dict[str, Any]]] | None:
            book = self.jobs(submission_ids)
            final = all(
                jobs and all(j["status"] in ("graded", "failed") for j in jobs)
                for jobs in book.values()
            )
            return book if final else None

        try:
            return wait_for(f"{len(submission_ids)} submissions graded", done, timeout, 0.5)
        except TimeoutError:
            book = self.jobs(submission_ids)
            waiting = {
                s: j
                for s, j in book.items()
                if not j or any(x["status"] not in ("graded", "failed") for x in j)
            }
            raise AssertionError(
                f"{len(waiting)} not graded in {timeout} s: "
                f"{dump(dict(list(waiting.items())[:5]))}\n"
                f"{self.stack.log('up')[-4000:]}"
            ) from None

    def graded_lines(self) -> Counter[str]:
        """job id -> how many times a worker logged it graded (any attempt)."""
        found = re.findall(r'"msg": "job (\w+) attempt \d+: graded"', self.stack.log("up"))
        return Counter(found)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    u = Up(tmp_path_factory.mktemp("embedded-broker"))
    try:
        yield u
    finally:
        u.stack.stop()


def upload(
    client: httpx.Client, data: bytes, name: str = "solution.ipynb", patience: float = 120
) -> str:
    """One upload; a 503 (busy) or a broken connection is retried with the same
    Idempotency-Key, so it is still one submission. Returns its id."""
    key = uuid.uuid4().hex
    deadline = time.monotonic() + patience
    while True:
        try:
            r = client.post(
                f"/api/v1/courses/dlp/assignments/{HW1}/submissions",
                files={"file": (name, data)},
                headers={"Idempotency-Key": key},
            )
            if r.status_code == 202:
                return str(r.json()["id"])
            if r.status_code != 503 or time.monotonic() > deadline:
                raise AssertionError(f"upload answered {r.status_code}: {r.text[:300]}")
            time.sleep(min(float(r.headers.get("Retry-After", 1)), 2.0))
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_500_submissions_in_bursts_worker_never_dies(up: Up) -> None:
    bursts, per_burst = 10, 50
    solution = course_notebook(HW1, "solution")
    [worker] = worker_pids(up.stack)[-1:]
    worker_started = start_time(worker)
    log_from = len(up.stack.log("up"))
    students = up.add_students("burst", 25)  # 20 submissions each
    clients = {
        s: httpx.Client(
            base_url=up.stack.base_url,
            timeout=60,
            headers={"Authorization": f"Bearer {up.stack.tokens[s]}"},
            limits=httpx.Limits(max_connections=per_burst),
        )
        for s in students
    }
    ids: list[str] = []
    owners: list[str] = []
    # The messages waiting in the queue folder, as the API wrote them (for the names).
    queue_folder, seen_names, sampling = up.data / "broker" / "queue", set(), threading.Event()

    def sample() -> None:
        while not sampling.wait(0.05):
            seen_names.update(os.listdir(queue_folder))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(per_burst) as pool:
            for burst in range(bursts):
                plan = [
                    (
                        students[i % len(students)],
                        with_extra_cell(solution, f"marker = {burst}_{i}"),
                    )
                    for i in range(per_burst)
                ]
                ids += pool.map(lambda item: upload(clients[item[0]], item[1]), plan)
                owners += [student for student, _ in plan]
                time.sleep(random.uniform(0.2, 1.0))  # a pause, then the next burst
        uploaded = time.perf_counter() - started
        book = up.wait_all_final(ids, timeout=240)
    finally:
        sampling.set()
        for client in clients.values():
            client.close()
    wall = time.perf_counter() - started

    log = up.stack.log("up")[log_from:]
    assert len(set(ids)) == bursts * per_burst
    assert worker_pids(up.stack)[-1] == worker and alive(worker, worker_started), (
        f"the worker died: {log[-3000:]}"
    )
    assert "restarting it" not in log and "Unrecoverable error" not in log
    assert "JSONDecodeError" not in log
    per_job = {j["results"] for jobs in book.values() for j in jobs}
    assert len(per_job) == 1 and per_job.pop() > 0, per_job
    not_once = {
        sid: jobs for sid, jobs in book.items() if len(jobs) != 1 or jobs[0]["status"] != "graded"
    }
    assert not not_once, f"not graded exactly once: {dump(not_once)}"
    graded = up.graded_lines()
    twice = {
        j["id"]: graded[j["id"]] for jobs in book.values() for j in jobs if graded[j["id"]] != 1
    }
    assert not twice, f"jobs finished other than once: {twice}"
    short = {
        sid: jobs[0]
        for sid, jobs in book.items()
        if jobs[0]["score"] != pytest.approx(jobs[0]["max_score"])
    }
    assert not short, f"the solution lost points: {dump(dict(list(short.items())[:5]))}"
    with httpx.Client(
        base_url=up.stack.base_url,
        headers={"Authorization": f"Bearer {up.stack.tokens[owners[-1]]}"},
    ) as c:
        seen = c.get(f"/api/v1/submissions/{ids[-1]}").json()
    assert seen["status"] == "graded" and seen["score"] == pytest.approx(seen["max_score"])
    # Names of our writer (zero-padded time), not kombu's: the API sent through it.
    assert seen_names and all(re.match(r"0\d{14}_", n) for n in seen_names), sorted(seen_names)[:5]
    corrupt = up.data / "broker" / "corrupt"
    assert not corrupt.exists() or not os.listdir(corrupt)

    # Every message the broker delivered was sent once: the extra deliveries are the
    # sweeper's sends (a job whose sending it saw unrecorded: the claim skips it; or a
    # job re-queued after its lease ran out on a busy machine: graded again).
    def deliveries() -> tuple[int, int, int, int]:
        log = up.stack.log("up")[log_from:]
        received = len(re.findall(r"Task autograder\.grade\[[\w-]+\] received", log))
        resent = sum(int(n) for n in re.findall(r"'resent': (\d+)", log))
        requeued = sum(int(n) for n in re.findall(r"'requeued': (\d+)", log))
        skipped = log.count("nothing to do (already taken or finished)")
        return received, resent, requeued, skipped

    def all_delivered() -> tuple[int, int, int, int] | None:
        received, resent, requeued, skipped = d = deliveries()
        return d if received == len(ids) + resent and skipped == resent - requeued else None

    try:  # a late re-send may still be on its way
        received, resent, requeued, skipped = wait_for("the re-sends delivered", all_delivered, 20)
    except TimeoutError:
        pytest.fail(f"deliveries (received, sent again, re-queued, skipped): {deliveries()}")
    print(
        f"\n{bursts * per_burst} submissions in {bursts} bursts of {per_burst}: uploaded "
        f"in {uploaded:.1f} s, all graded once in {wall:.1f} s; worker pid {worker} "
        f"never died; {received} deliveries = {len(ids)} + {resent} sent again by the "
        f"sweeper ({skipped} skipped by the claim, {requeued} after a lease ran out)"
    )


def test_killed_worker_is_restarted_and_grading_goes_on(up: Up) -> None:
    stack = up.stack
    before = worker_pids(stack)
    old = before[-1]
    wait_for(
        "the worker ready",
        lambda: (
            f"autograder-{old}@" in stack.log("up")
            and "ready." in stack.log("up")
            and len(children_of(old)) >= 2
        ),
        60,
    )
    tree = process_tree(old)  # its pool, and the pool's sandbox zygotes
    client = httpx.Client(
        base_url=stack.base_url,
        timeout=30,
        headers={"Authorization": f"Bearer {stack.tokens['alice']}"},
    )
    try:
        sleepy = with_extra_cell(course_notebook(HW1, "solution"), "import time\ntime.sleep(4)")
        sid = upload(client, sleepy, "sleepy.ipynb")
        wait_for(
            "the job running",
            lambda: any(j["status"] == "running" for j in up.jobs([sid])[sid]),
            60,
            0.1,
        )
        time.sleep(0.5)
        os.kill(old, signal.SIGKILL)  # the worker's main process, as the OOM killer would
        killed_at = time.monotonic()

        # The API keeps serving while the worker is away.
        assert httpx.get(f"{stack.base_url}/healthz", timeout=5).status_code < 500
        new = wait_for("the worker restarted", lambda: worker_pids(stack)[len(before) :], 30, 0.1)[
            -1
        ]
        restarted_after = time.monotonic() - killed_at
        assert new != old and start_time(new)
        assert re.search(
            rf"the worker process \(pid {old}\) exited \(-9\).*restarting it in", stack.log("up")
        ), stack.log("up")[-2000:]
        wait_for(
            "the dead worker's processes gone",
            lambda: not any(alive(p, s) for p, s in tree.items()),
            15,
        )

        # The job it was grading is graded once (attempt 2 after the lease ran out; or
        # later if a heartbeat came late on a busy machine: a lease of LEASE s is short).
        book = up.wait_all_final([sid], timeout=LEASE + 60)
        [job] = book[sid]
        assert job["status"] == "graded" and job["attempt"] >= 2, dump(job)
        assert up.graded_lines()[job["id"]] == 1, dump(job)
        attempts = job["attempt"]
        # ... and a submission made now is graded by the new worker.
        after = upload(client, with_extra_cell(course_notebook(HW1, "solution"), "x = 'after'"))
        [job] = up.wait_all_final([after], timeout=60)[after]
        assert job["status"] == "graded" and job["attempt"] == 1, dump(job)
        body = client.get(f"/api/v1/submissions/{after}").json()
        assert body["score"] == pytest.approx(body["max_score"]), dump(body)
        assert up.graded_lines()[job["id"]] == 1
    finally:
        client.close()
    print(
        f"\nworker SIGKILLed: restarted in {restarted_after:.1f} s (pid {old} -> {new}); "
        f"its job graded once on attempt {attempts}; a new submission graded"
    )


def test_sigterm_stops_everything(up: Up) -> None:
    tree = process_tree(up.proc.pid)
    assert len(tree) >= 4, tree  # up, API, worker and its pool
    os.killpg(up.proc.pid, signal.SIGTERM)
    code = up.proc.wait(30)
    assert code == 0, up.stack.log("up")[-2000:]

    def left() -> list[int]:
        return [p for p, s in tree.items() if alive(p, s)]

    try:
        wait_for("every process of `autograder up` gone", lambda: not left(), 10)
    except TimeoutError:
        pytest.fail(f"left behind: {[Path(f'/proc/{p}/cmdline').read_bytes() for p in left()]}")
    up.stack.procs.pop("up", None)
    print(f"\nSIGTERM: `autograder up` exited 0, all {len(tree)} of its processes gone")
