"""Distributed for real: the API and the workers share nothing but PostgreSQL and Redis.

One deployment for the module: `autograder migrate` and `autograder serve` with a data
folder of their own, and workers each with a data folder of its own and a course
folder that does not exist (as on other machines without a checkout of the course).
Blobs are in PostgreSQL (the default there); each worker fetches the submission and
the assignment version's bundle and caches them.

- notebooks and model files are graded, regrades too, and again after both workers
  are restarted on empty data folders;
- with CPU workers only, an hw2 notebook (an exercise asks for a GPU) is graded on
  the CPU within 60 s and says so; with a worker consuming `gpu`, it goes there; when
  that worker stops answering, the sweeper moves the waiting job to `cpu`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from safetensors.torch import save
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.blob_backends import DatabaseBlobStore
from core.db import make_engine
from core.models import AssignmentVersion, GradingJob, WorkerPresence
from tests.support.notebooks import course_notebook
from tests.support.paths import BIN, HW1, HW2, REFERENCE, ROOT
from tests.support.stack import (
    PG_ADMIN_URL,
    Stack,
    base_env,
    cli,
    create_database,
    database_url,
    dump,
    free_port,
    fresh_redis_db,
    wait_http,
)

EXPIRY = 4.0  # AUTOGRADER_WORKER_EXPIRY_SECONDS: a silent worker is gone after this


def start(stack: Stack, name: str, env: dict[str, str], *args: str) -> subprocess.Popen[Any]:
    """Stack.start with an environment of the process's own (its data folder)."""
    log = open(stack.workdir / f"{name}.log", "ab")  # lives with the process
    proc = subprocess.Popen(
        [str(BIN / "autograder"), *args],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.procs[name] = proc
    return proc


def worker_env(stack: Stack, name: str) -> dict[str, str]:
    env = dict(stack.env)
    env["AUTOGRADER_DATA_DIR"] = str(stack.workdir / f"{name}-data")
    env["AUTOGRADER_COURSE_DIR"] = str(stack.workdir / "no-course-here")
    return env


def start_worker(stack: Stack, name: str, queues: str = "cpu") -> None:
    start(stack, name, worker_env(stack, name), "worker", "--queues", queues, "--concurrency", "1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("distributed")
    database = create_database()
    env = base_env(workdir)
    env["AUTOGRADER_DATA_DIR"] = str(workdir / "api-data")
    env["AUTOGRADER_DATABASE_URL"] = database_url(PG_ADMIN_URL, database)
    env["AUTOGRADER_BROKER_URL"] = fresh_redis_db()
    env["AUTOGRADER_WORKER_HEARTBEAT_SECONDS"] = "1"
    env["AUTOGRADER_WORKER_EXPIRY_SECONDS"] = str(EXPIRY)
    port = free_port()
    s = Stack(
        base_url=f"http://127.0.0.1:{port}",
        env=env,
        workdir=workdir,
        database=database,
        owned_redis=env["AUTOGRADER_BROKER_URL"],
    )
    try:
        cli(env, "migrate")
        api = start(s, "api", env, "serve", "--port", str(port))
        start_worker(s, "worker")
        start_worker(s, "worker1")
        wait_http(f"{s.base_url}/healthz", proc=api)
        s.add_user("alice", "student")
        s.add_user("tina", "ta")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def db(stack: Stack) -> Iterator[Engine]:
    engine = make_engine(stack.env["AUTOGRADER_DATABASE_URL"])
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def model_file() -> bytes:
    sys.path.insert(0, str(REFERENCE / HW1 / "public"))
    try:
        from hw1_helpers import DigitsMLP
    finally:
        sys.path.remove(str(REFERENCE / HW1 / "public"))
    torch.manual_seed(0)
    return save(DigitsMLP().state_dict())


def wait_workers(db: Engine, queues: set[str], timeout: float = 90) -> None:
    """Until live workers consume exactly `queues` (heartbeats within EXPIRY)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        with Session(db) as session:
            since = time.time() - EXPIRY
            rows = session.scalars(select(WorkerPresence)).all()
            seen = {q for w in rows if w.seen_at.timestamp() >= since for q in w.queues}
        if seen == queues:
            return
        time.sleep(0.3)
    raise TimeoutError(f"live workers consume {seen}, not {queues}")


def jobs_of(db: Engine, submission_id: str) -> list[GradingJob]:
    with Session(db) as session:
        return list(
            session.scalars(
                select(GradingJob)
                .where(GradingJob.submission_id == submission_id)
                .order_by(GradingJob.created_at)
            )
        )


def wait_jobs(
    stack: Stack, db: Engine, submission_id: str, n: int, timeout: float = 120
) -> list[GradingJob]:
    deadline = time.monotonic() + timeout
    jobs: list[GradingJob] = []
    while time.monotonic() < deadline:
        jobs = jobs_of(db, submission_id)
        if len(jobs) >= n and all(j.status in ("graded", "failed") for j in jobs):
            return jobs
        time.sleep(0.3)
    raise TimeoutError(
        f"{submission_id}: {[(j.status, j.error) for j in jobs]}\n"
        + "\n".join(stack.log(w)[-2000:] for w in ("worker", "worker1"))
    )


def grade_all(stack: Stack, files: list[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
    """Submit every file first (both workers busy at once), then wait for each."""
    ids = []
    for assignment, name, data in files:
        response = stack.submit("alice", assignment, name, data)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return [stack.wait_graded("alice", sid, timeout=120) for sid in ids]


def check_graded(bodies: list[dict[str, Any]]) -> None:
    notebook, model = bodies
    assert notebook["status"] == "graded", dump(notebook)
    assert notebook["max_score"] > 0, dump(notebook)
    assert notebook["score"] == pytest.approx(notebook["max_score"]), dump(notebook)
    assert model["status"] == "graded", dump(model)
    assert [e["slug"] for e in model["exercises"]] == ["digits-classifier"], dump(model)


def test_graded_with_nothing_shared_but_postgresql_and_redis(
    stack: Stack, db: Engine, model_file: bytes
) -> None:
    bodies = grade_all(
        stack,
        [
            (HW1, "solution.ipynb", course_notebook(HW1, "solution")),
            (HW1, "model.safetensors", model_file),
        ],
    )
    check_graded(bodies)
    with Session(db) as session:
        versions = {v.slug: v for v in session.scalars(select(AssignmentVersion))}
    assert set(versions) >= {HW1, HW2}
    for body in bodies:
        (job,) = jobs_of(db, body["id"])
        assert job.assignment_version == versions[HW1].version and job.attempt == 1
    # The API keeps no blob of its own; each worker grades from its own cache.
    api_data = stack.workdir / "api-data"
    assert not (api_data / "blobs").exists() or not any((api_data / "blobs").rglob("*"))
    caches = [stack.workdir / f"{w}-data" / "cache" for w in ("worker", "worker1")]
    assert any((c / "bundles" / versions[HW1].bundle_sha256 / HW1).is_dir() for c in caches)
    assert not (stack.workdir / "no-course-here").exists()
    # The containers' healthchecks (docker-compose.yml) say the same.
    assert "consumes cpu" in cli(worker_env(stack, "worker"), "healthcheck", "worker").stdout
    assert (
        cli(stack.env, "healthcheck", "api", "--url", f"{stack.base_url}/healthz").stdout.strip()
        == "ok"
    )

    # A regrade: a new job, graded the same, the first kept.
    with stack.client("tina") as c:
        response = c.post(f"/api/v1/submissions/{bodies[0]['id']}/regrade")
    assert response.status_code == 202, response.text
    first, second = wait_jobs(stack, db, bodies[0]["id"], 2)
    assert (first.status, second.status) == ("graded", "graded")
    assert second.score == pytest.approx(first.score)


def test_graded_after_the_workers_restart_on_empty_data_folders(
    stack: Stack, db: Engine, model_file: bytes
) -> None:
    for name in ("worker", "worker1"):
        stack.kill(name, signal.SIGTERM)
        shutil.rmtree(stack.workdir / f"{name}-data", ignore_errors=True)
        start_worker(stack, name)
    check_graded(
        grade_all(
            stack,
            [
                (HW1, "again.ipynb", course_notebook(HW1, "solution")),
                (HW1, "again.safetensors", model_file),
            ],
        )
    )


def test_gpu_exercises_graded_on_the_cpu_without_a_gpu_worker(stack: Stack, db: Engine) -> None:
    wait_workers(db, {"cpu"})
    started = time.monotonic()
    response = stack.submit("alice", HW2, "hw2.ipynb", course_notebook(HW2, "solution"))
    assert response.status_code == 202, response.text
    body = stack.wait_graded("alice", response.json()["id"], timeout=60)
    took = time.monotonic() - started
    assert body["status"] == "graded", dump(body)
    # Full automatic marks (10); the manual exercise's 3 points wait for a grader.
    assert body["max_score"] == pytest.approx(13) and body["score"] == pytest.approx(10), dump(body)
    assert any("asks for a GPU" in n and "graded on the CPU" in n for n in body["notes"]), dump(
        body
    )
    (job,) = jobs_of(db, body["id"])
    assert job.queue == "cpu" and job.device == "cpu"
    print(f"hw2 on the CPU, no GPU worker: graded in {took:.1f} s")


def test_gpu_worker_takes_gpu_jobs_and_the_sweeper_moves_them_when_it_is_gone(
    stack: Stack, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_worker(stack, "gpu-worker", queues="gpu")
    wait_workers(db, {"cpu", "gpu"})
    response = stack.submit("alice", HW2, "hw2.ipynb", course_notebook(HW2, "solution"))
    body = stack.wait_graded("alice", response.json()["id"], timeout=90)
    assert body["status"] == "graded", dump(body)
    (job,) = jobs_of(db, body["id"])
    assert job.queue == "gpu"
    assert f"job {job.id} attempt 1: grading" in stack.log("gpu-worker")

    # The GPU worker stops answering (frozen: no heartbeat, no grading): a job routed
    # to it while it still looked alive is moved to cpu by the sweeper, graded there.
    os.killpg(stack.procs["gpu-worker"].pid, signal.SIGSTOP)
    try:
        response = stack.submit("alice", HW2, "hw2.ipynb", course_notebook(HW2, "solution"))
        sid = response.json()["id"]
        (queued,) = jobs_of(db, sid)
        assert queued.queue == "gpu"
        body = stack.wait_graded("alice", sid, timeout=60)
        assert body["status"] == "graded", dump(body)
        (job,) = jobs_of(db, sid)
        assert job.queue == "cpu" and any("graded on the CPU" in n for n in body["notes"])
        from core import capacity
        from core.settings import get_settings

        monkeypatch.setenv("AUTOGRADER_WORKER_EXPIRY_SECONDS", str(EXPIRY))
        get_settings.cache_clear()
        try:
            with Session(db) as session:
                assert capacity.queues_without_consumers(session) == ["gpu"]
                waiting = GradingJob(queue="gpu", status="queued")
                assert "Waiting for a GPU worker" in (capacity.waiting_note(session, waiting) or "")
        finally:
            monkeypatch.delenv("AUTOGRADER_WORKER_EXPIRY_SECONDS")
            get_settings.cache_clear()
    finally:
        os.killpg(stack.procs["gpu-worker"].pid, signal.SIGCONT)
        stack.kill("gpu-worker")


def test_the_api_writes_uploads_to_postgresql(stack: Stack, db: Engine) -> None:
    data = course_notebook(HW1, "starter")
    response = stack.submit("alice", HW1, "starter.ipynb", data)
    assert response.status_code == 202
    assert DatabaseBlobStore(db, 10**9).read(hashlib.sha256(data).hexdigest()) == data
