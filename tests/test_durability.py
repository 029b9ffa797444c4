"""Never lose a submission: real processes, real failures.

One deployment for the whole module, on a PostgreSQL cluster and a redis-server of its
own (the shared ones serve other people's tests and are never stopped): the API with
its sweeper, and `autograder worker` processes that each test starts and kills.

- a worker SIGKILLed in the middle of a job: graded exactly once afterwards (attempt 2);
- a job that keeps killing its worker: failed after AUTOGRADER_MAX_ATTEMPTS, with a reason;
- Redis stopped during 50 uploads (a restart without persistence loses the queued
  messages): all 202, all graded once, the sweeper re-sends what was lost or unsent;
- PostgreSQL restarted during uploads: a 202 or a 503 with a sentence, every 202 graded,
  nothing half-written; the worker's heartbeat and the sweeper carry on by themselves;
- a rush of 200 uploads from 100 clients: no 5xx, none lost, none graded twice;
- /metrics and the JSON log lines with job ids.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, exists, func, select
from sqlalchemy.orm import Session

from core.accounts import add_user
from core.db import make_engine
from core.models import GradingJob, Submission, TestResult, User
from tests.support.paths import ALTERNATIVES, HW1
from tests.support.stack import PostgresCluster, RedisServer, Stack, distributed_stack, dump

LEASE = 6.0  # AUTOGRADER_LEASE_SECONDS for this module: a dead worker's job is re-queued
SWEEP = 1.0  # within LEASE + SWEEP seconds
MAX_ATTEMPTS = 2


def hw1_py(prelude: str = "") -> bytes:
    """A small, correct .py submission for hw1; `prelude` runs first (its own cell)."""
    cells = [prelude] if prelude else []
    cells += [
        (ALTERNATIVES / "label_smoothing_ce__torch_builtin.py").read_text(),
        (ALTERNATIVES / "early_stopping_epoch__while_loop.py").read_text(),
    ]
    return "".join(f"# %%\n{cell}\n" for cell in cells).encode()


def sleepy(seconds: float) -> bytes:
    """A submission whose first cell sleeps: grading it takes at least `seconds`."""
    return hw1_py(f"import time\ntime.sleep({seconds})\n")


# -- the deployment ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, own_pg: PostgresCluster, own_redis: RedisServer
) -> Iterator[Stack]:
    s = distributed_stack(
        tmp_path_factory.mktemp("durability"),
        workers=0,
        pg_admin_url=own_pg.admin_url,
        broker_url=own_redis.url,
        extra_env={
            "AUTOGRADER_LEASE_SECONDS": str(LEASE),
            "AUTOGRADER_SWEEP_INTERVAL_SECONDS": str(SWEEP),
            "AUTOGRADER_RESEND_AFTER_SECONDS": "3",
            "AUTOGRADER_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        },
    )
    try:
        s.add_user("tina", "ta")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def db(stack: Stack) -> Iterator[Engine]:
    engine = make_engine(stack.env["AUTOGRADER_DATABASE_URL"])
    yield engine
    engine.dispose()


def add_students(stack: Stack, db: Engine, prefix: str, n: int) -> list[str]:
    """n enrolled students with tokens, written straight to the database (fast)."""
    names = [f"{prefix}{i}" for i in range(n)]
    with Session(db) as session:
        for name in names:
            stack.tokens[name] = add_user(session, name, "student", stack.course)
        session.commit()
    return names


def run_workers(stack: Stack, *names: str) -> None:
    """Exactly these workers run (one grading slot each); others are stopped."""
    for name in [n for n in stack.procs if n.startswith("w") and n not in names]:
        stack.kill(name, signal.SIGTERM)
    for name in names:
        if name not in stack.procs:
            stack.start_worker(name, concurrency=1)


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout} s")


def jobs_of(stack: Stack, submission_id: str) -> list[dict[str, Any]]:
    with stack.client("tina") as c:
        response = c.get(f"/api/v1/submissions/{submission_id}/jobs")
        response.raise_for_status()
        return list(response.json())


def ledger(db: Engine, submission_ids: list[str]) -> dict[str, list[tuple[str, int, int]]]:
    """submission id -> [(job status, attempt, number of result rows)] for each job."""
    out: dict[str, list[tuple[str, int, int]]] = {sid: [] for sid in submission_ids}
    with Session(db) as session:
        rows = session.execute(
            select(
                GradingJob.submission_id,
                GradingJob.status,
                GradingJob.attempt,
                func.count(TestResult.id),
            )
            .outerjoin(TestResult, TestResult.job_id == GradingJob.id)
            .where(GradingJob.submission_id.in_(submission_ids))
            .group_by(
                GradingJob.id, GradingJob.submission_id, GradingJob.status, GradingJob.attempt
            )
        ).all()
    for sid, status, attempt, results in rows:
        out[sid].append((status, attempt, results))
    return out


def wait_all_final(db: Engine, submission_ids: list[str], timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        book = ledger(db, submission_ids)
        final = all(
            jobs and all(j[0] in ("graded", "failed") for j in jobs) for jobs in book.values()
        )
        return book if final else None

    try:
        return wait_for(f"{len(submission_ids)} submissions graded", done, timeout, every=0.5)
    except TimeoutError:
        book = ledger(db, submission_ids)
        waiting = {
            sid: jobs
            for sid, jobs in book.items()
            if not jobs or any(j[0] not in ("graded", "failed") for j in jobs)
        }
        raise AssertionError(f"not graded in {timeout} s: {dump(waiting)}") from None


def _results_of_one_grading(stack: Stack, db: Engine) -> int:
    """How many test results one full hw1 .py grading writes (the yardstick for 'once')."""
    name = add_students(stack, db, "yardstick", 1)[0]
    run_workers(stack, "w-yard")
    body = stack.grade(name, HW1, "hw1.py", hw1_py(), timeout=90)
    assert body["status"] == "graded", dump(body)
    assert body["score"] == pytest.approx(body["max_score"]), dump(body)
    book = ledger(db, [body["id"]])[body["id"]]
    assert len(book) == 1 and book[0][:2] == ("graded", 1)
    return book[0][2]


@pytest.fixture(scope="module")
def results_per_job(stack: Stack, db: Engine) -> int:
    return _results_of_one_grading(stack, db)


def assert_graded_exactly_once(
    db: Engine, submission_ids: list[str], per_job: int, max_attempt: int = 1
) -> None:
    book = ledger(db, submission_ids)
    problems = {}
    for sid, jobs in book.items():
        if (
            len(jobs) != 1
            or jobs[0][0] != "graded"
            or jobs[0][2] != per_job
            or not 1 <= jobs[0][1] <= max_attempt
        ):
            problems[sid] = jobs
    assert not problems, f"not graded exactly once: {dump(problems)}"
    with Session(db) as session:
        scored = session.scalars(
            select(Submission.current_job_id).where(Submission.id.in_(submission_ids))
        ).all()
    assert all(scored), "a graded submission has no current score"


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def kill_grading_process(stack: Stack, worker: str) -> None:
    """SIGKILL the worker's pool process (and what it started), as the OOM killer would;
    the worker's main process stays and starts a new pool process."""
    main = stack.procs[worker].pid
    pool = [p for p in process_tree(main) if p != main and parent_of(p) == main]
    assert pool, f"worker {worker} has no pool process"
    for p in pool:
        for q in reversed(process_tree(p)):
            try:
                os.kill(q, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- the tests ----------------------------------------------------------------------------


def test_worker_killed_mid_job_is_graded_exactly_once(
    stack: Stack, db: Engine, results_per_job: int
) -> None:
    student = add_students(stack, db, "killed", 1)[0]
    run_workers(stack, "w1")
    response = stack.submit(student, HW1, "sleepy.py", sleepy(4))
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    wait_for("the job running", lambda: jobs_of(stack, sid)[0]["status"] == "running", 60)
    time.sleep(1.0)  # well inside the student's 4 s sleep
    killed_at = time.monotonic()
    stack.kill("w1", signal.SIGKILL)  # the whole worker: main process and pool

    # Nobody is left to grade it: the sweeper must notice the lease ran out.
    job = wait_for(
        "re-queued after the lease",
        lambda: next((j for j in jobs_of(stack, sid) if j["status"] == "queued"), None),
        LEASE + 10,
    )
    requeued_after = time.monotonic() - killed_at
    assert requeued_after <= LEASE + 3 * SWEEP + 1, requeued_after
    assert job["attempt"] == 1 and "lost during attempt 1" in job["error"], dump(job)

    run_workers(stack, "w2")
    body = stack.wait_graded(student, sid, timeout=90)
    assert body["status"] == "graded", dump(body)
    assert body["score"] == pytest.approx(body["max_score"]), dump(body)
    jobs = jobs_of(stack, sid)
    assert len(jobs) == 1, dump(jobs)
    assert jobs[0]["attempt"] == 2 and jobs[0]["error"] is None, dump(jobs)
    time.sleep(2 * SWEEP)  # a late duplicate (the killed worker's message) changes nothing
    assert_graded_exactly_once(db, [sid], results_per_job, max_attempt=2)
    print(
        f"\nworker SIGKILLed mid-job: re-queued {requeued_after:.1f} s later "
        f"(lease {LEASE:g} s), graded once on attempt 2"
    )


def test_a_job_that_keeps_killing_its_worker_fails_with_a_reason(stack: Stack, db: Engine) -> None:
    student = add_students(stack, db, "crasher", 1)[0]
    run_workers(stack, "w2")
    response = stack.submit(student, HW1, "crasher.py", sleepy(30))
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        wait_for(
            f"attempt {attempt} running",
            lambda a=attempt: any(
                j["status"] == "running" and j["attempt"] == a for j in jobs_of(stack, sid)
            ),
            LEASE + 60,
        )
        time.sleep(0.5)
        kill_grading_process(stack, "w2")
    job = wait_for(
        "the job failed",
        lambda: next((j for j in jobs_of(stack, sid) if j["status"] == "failed"), None),
        LEASE + 15,
    )
    assert job["attempt"] == MAX_ATTEMPTS, dump(job)
    assert f"gave up after {MAX_ATTEMPTS} attempts" in job["error"], dump(job)
    assert "worker grading it was lost" in job["error"], dump(job)
    assert job["score"] is None
    with stack.client("tina") as c:
        staff_view = c.get(f"/api/v1/submissions/{sid}").json()
    assert staff_view["status"] == "failed" and staff_view["score"] is None
    assert staff_view["error"] == job["error"]
    # A failed job does not count against the student's submission cap, and the worker
    # that was killed twice still grades the next submission.
    body = stack.grade(student, HW1, "fine.py", hw1_py(), timeout=60)
    assert body["status"] == "graded", dump(body)
    print(f"\njob killing its worker: failed after {MAX_ATTEMPTS} attempts: {job['error']}")


def upload_all(
    stack: Stack, jobs: list[tuple[str, bytes]], clients: int, name: str = "hw1.py"
) -> list[tuple[int, str, float]]:
    """Upload concurrently; (status, body, seconds) per upload, in order."""

    def one(item: tuple[str, bytes]) -> tuple[int, str, float]:
        student, data = item
        started = time.perf_counter()
        try:
            r = stack.submit(student, HW1, name, data)
            return r.status_code, r.text, time.perf_counter() - started
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}: {exc}", time.perf_counter() - started

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, jobs))


def test_redis_restart_during_50_uploads_loses_nothing(
    stack: Stack, db: Engine, own_redis: RedisServer, results_per_job: int
) -> None:
    students = add_students(stack, db, "redis", 5)
    run_workers(stack, "w3")
    # Keep the only worker busy, so the next uploads wait in Redis when it stops.
    busy = stack.submit(students[0], HW1, "busy.py", sleepy(6))
    assert busy.status_code == 202
    wait_for(
        "the busy job running",
        lambda: jobs_of(stack, busy.json()["id"])[0]["status"] == "running",
        60,
    )
    plan = [(students[i % 5], hw1_py(f"x = {i}")) for i in range(50)]
    before = upload_all(stack, plan[:15], clients=5)  # queued in Redis, then lost
    own_redis.stop()
    down_started = time.monotonic()
    during = upload_all(stack, plan[15:35], clients=5)  # the broker is down
    down_for = time.monotonic() - down_started
    # Counted while Redis is still down: nothing can have sent them yet, not even the
    # sweeper (which, once Redis is back, may send them before we look).
    during_ids = [json.loads(text)["id"] for code, text, _ in during if code == 202]
    with Session(db) as session:
        unsent = session.scalar(
            select(func.count())
            .select_from(GradingJob)
            .where(GradingJob.submission_id.in_(during_ids), GradingJob.sent_at.is_(None))
        )
    own_redis.start()
    after = upload_all(stack, plan[35:], clients=5)
    results = before + during + after
    codes = [code for code, _, _ in results]
    assert codes == [202] * 50, [(c, t[:200]) for c, t, _ in results if c != 202]
    assert max(t for _, _, t in during) < 5, "an upload waited long for the broker"
    ids = [json.loads(text)["id"] for _, text, _ in results] + [busy.json()["id"]]
    assert unsent == len(during), "uploads made while Redis was down should wait to be sent"
    # The one worker lost its broker connection mid-job: it must reconnect by itself.
    started = time.monotonic()
    wait_all_final(db, ids, timeout=150)
    assert_graded_exactly_once(db, ids, results_per_job, max_attempt=MAX_ATTEMPTS)
    print(
        f"\nRedis down {down_for:.1f} s during 50 uploads: 50 x 202 "
        f"(slowest while down {max(t for _, _, t in during):.2f} s), "
        f"all graded once {time.monotonic() - started:.1f} s after Redis returned"
    )


def test_postgres_restart_during_uploads(
    stack: Stack, db: Engine, own_pg: PostgresCluster, results_per_job: int
) -> None:
    students = add_students(stack, db, "pg", 10)
    run_workers(stack, "w5")
    # A long job keeps running across the restart: its heartbeat must carry on.
    long = stack.submit(students[0], HW1, "long.py", sleepy(3 * LEASE))
    assert long.status_code == 202
    long_id = long.json()["id"]
    wait_for("the long job running", lambda: jobs_of(stack, long_id)[0]["status"] == "running", 60)

    outcomes: list[tuple[int, str, float]] = []
    finished: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(k: int) -> None:
        i = 0
        while not stop.is_set():
            student = students[(k + 4 * i) % len(students)]
            started = time.perf_counter()
            try:
                r = stack.submit(student, HW1, "hw1.py", hw1_py(f"y = {k}, {i}"))
                outcome = (r.status_code, r.text, time.perf_counter() - started)
            except httpx.HTTPError as exc:
                outcome = (0, repr(exc), time.perf_counter() - started)
            with lock:
                outcomes.append(outcome)
                finished.append(time.monotonic())
            i += 1
            time.sleep(0.25)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        own_pg.stop("fast")  # every connection is cut, new ones are refused
        time.sleep(2.5)
        own_pg.start()
        restarted_at = time.monotonic()
        time.sleep(2.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)

    accepted = [json.loads(text)["id"] for code, text, _ in outcomes if code == 202]
    refused = [json.loads(text)["detail"] for code, text, _ in outcomes if code == 503]
    other = [(code, text[:300]) for code, text, _ in outcomes if code not in (202, 503)]
    assert not other, other
    assert refused, "no upload saw the database away"
    assert all("database" in d and d.endswith(".") for d in refused), refused
    assert outcomes[-1][0] == 202, "uploads did not recover after the restart"

    # Heartbeats resumed after the restart: the lease was extended past it.
    def lease_extended() -> bool:
        with Session(db) as session:
            job = session.scalar(select(GradingJob).where(GradingJob.submission_id == long_id))
            assert job is not None
            if job.status != "running":
                return True  # finished already (it can only finish if not re-queued)
            now = session.scalar(select(func.now()))
            assert job.lease_expires_at is not None and now is not None
            return (job.lease_expires_at - now).total_seconds() > LEASE - 2.5

    wait_for("a heartbeat after the restart", lease_extended, 10)

    # The sweeper survived too: a job committed but never sent (as if the API died
    # right after the commit) is sent by it.
    with Session(db) as session:
        orphan = GradingJob(
            submission_id=accepted[-1], queue="cpu", reason="test: committed, never sent"
        )
        session.add(orphan)
        session.commit()
        orphan_id = orphan.id

    # Nothing half-written: every submission has its job; every 202 is graded once
    # (and so is an upload whose commit landed just as the connection was cut, if any).
    with Session(db) as session:
        stored = list(
            session.scalars(
                select(Submission.id).join(Submission.user).where(User.name.in_(students))
            ).all()
        )
        jobless = session.scalars(
            select(Submission.id).where(~exists().where(GradingJob.submission_id == Submission.id))
        ).all()
    assert not jobless, jobless
    assert set(accepted) <= set(stored)
    assert len(stored) - len(accepted) - 1 <= len(refused)
    wait_all_final(db, stored, timeout=120)
    singles = [sid for sid in accepted if sid != accepted[-1]]
    assert_graded_exactly_once(db, singles, results_per_job, max_attempt=MAX_ATTEMPTS)
    with Session(db) as session:
        long_job = session.scalar(select(GradingJob).where(GradingJob.submission_id == long_id))
        orphan_job = session.get(GradingJob, orphan_id)
        assert long_job is not None and orphan_job is not None
        assert long_job.status == "graded" and long_job.attempt == 1, (
            "the long job was re-queued: its heartbeat stopped after the restart"
        )
        assert orphan_job.status == "graded", orphan_job.error
    slowest_503 = max((t for code, _, t in outcomes if code == 503), default=0.0)
    first_ok = next(
        (
            t
            for t, (code, _, _) in zip(finished, outcomes, strict=True)
            if code == 202 and t > restarted_at
        ),
        None,
    )
    print(
        f"\nPostgreSQL restarted during {len(outcomes)} uploads: {len(accepted)} x 202 "
        f"(all graded once), {len(refused)} x 503 with a sentence (slowest "
        f"{slowest_503:.2f} s); first 202 "
        f"{(first_ok or restarted_at) - restarted_at:.1f} s after the restart"
    )


def test_upload_rush_200_from_100_clients(stack: Stack, db: Engine, results_per_job: int) -> None:
    # More clients than pooled connections (30) plus thread-pool threads (40): without
    # api/inflight.py every thread ended up waiting for a connection held by a request
    # waiting for a thread, and the API answered nothing but 500s after 30 s.
    students = add_students(stack, db, "rush", 100)
    run_workers(stack, "w6", "w7")
    plan = [(students[i % 100], hw1_py(f"z = {i}")) for i in range(200)]
    started = time.perf_counter()
    results = upload_all(stack, plan, clients=100)
    wall = time.perf_counter() - started
    bad = [(code, text[:200]) for code, text, _ in results if code != 202]
    assert not bad, bad
    latencies = sorted(t for _, _, t in results)
    p50 = statistics.median(latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    ids = [json.loads(text)["id"] for _, text, _ in results]
    assert len(set(ids)) == 200
    wait_all_final(db, ids, timeout=180)
    assert_graded_exactly_once(db, ids, results_per_job)
    print(
        f"\nrush: 200 uploads from 100 clients in {wall:.1f} s = {200 / wall:.0f}/s, "
        f"latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; all graded once"
    )


def test_metrics_and_json_logs(stack: Stack, db: Engine) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=30) as c:
        response = c.get("/metrics")
    assert response.status_code == 200
    text = response.text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("autograder_"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    with Session(db) as session:
        graded = session.scalar(
            select(func.count()).select_from(GradingJob).where(GradingJob.status == "graded")
        )
        failed = session.scalar(
            select(func.count()).select_from(GradingJob).where(GradingJob.status == "failed")
        )
    assert samples['autograder_jobs{queue="cpu",status="graded"}'] == graded
    assert samples['autograder_jobs{queue="cpu",status="failed"}'] == failed >= 1
    assert samples["autograder_database_up"] == 1 and samples["autograder_broker_up"] == 1
    assert samples['autograder_queue_depth{queue="cpu"}'] >= 0
    assert samples["autograder_job_duration_seconds_count"] == graded
    assert samples["autograder_sandbox_load_seconds_count"] == graded
    assert samples['autograder_job_duration_seconds_bucket{le="+Inf"}'] == graded
    assert samples['autograder_jobs_retried{status="graded"}'] >= 1
    assert samples['autograder_test_results{outcome="passed"}'] > 0
    assert samples['autograder_upload_responses_total{code="202"}'] >= 250
    assert samples['autograder_upload_responses_total{code="503"}'] >= 1
    assert samples["autograder_upload_bytes_count"] >= 250
    assert 500 < samples["autograder_upload_bytes_sum"] / samples["autograder_upload_bytes_count"]

    # Every worker line is a JSON object; a grading line names its job.
    lines = [
        json.loads(line)
        for name in stack.procs
        if name.startswith("w")
        for line in stack.log(name).splitlines()
        if line.startswith("{")
    ]
    assert lines
    graded_lines = [e for e in lines if e.get("msg", "").endswith(": graded")]
    assert graded_lines and all(e["job_id"] and e["attempt"] for e in graded_lines)
    api_lines = [json.loads(line) for line in stack.log("api").splitlines() if line.startswith("{")]
    assert any(e.get("logger") == "core.jobs" and e.get("job_id") for e in api_lines), (
        "the sweeper's lines about re-queued jobs name them"
    )
