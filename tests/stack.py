"""Running the real service for tests: PostgreSQL databases, Redis, processes.

A `Stack` is one deployment: `autograder migrate`, `autograder serve` and one or more
`autograder worker` processes against a fresh PostgreSQL database and its own Redis
database number, or `autograder up` (embedded) with its own data dir and port.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS", "redis://127.0.0.1:6379")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_database() -> str:
    import psycopg

    name = f"ag_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_redis_db_counter = iter(range(1, 16))


def fresh_redis_db() -> str:
    import redis

    number = next(_redis_db_counter)
    client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
    client.flushdb()
    client.close()
    return f"{REDIS_URL}/{number}"


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "autograder"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=True)


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    workdir: Path
    course: str = "dlp"
    procs: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    database: str | None = None

    # -- processes ------------------------------------------------------------
    def start(self, name: str, *args: str) -> subprocess.Popen[Any]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen([str(BIN / "autograder"), *args], env=self.env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str = "worker", queues: str = "cpu,gpu",
                     concurrency: int = 1) -> subprocess.Popen[Any]:
        return self.start(name, "worker", "--queues", queues, "--concurrency", str(concurrency))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)
        if self.database:
            drop_database(self.database)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- users ----------------------------------------------------------------
    def add_user(self, name: str, role: str = "student") -> str:
        out = cli(self.env, "user", "add", name, "--role", role, "--course", self.course)
        token = out.stdout.strip().splitlines()[-1]
        self.tokens[name] = token
        return token

    # -- HTTP -----------------------------------------------------------------
    def client(self, user: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def submit(self, user: str, assignment: str, filename: str, data: bytes,
               headers: dict[str, str] | None = None) -> httpx.Response:
        with self.client(user) as c:
            return c.post(f"/api/v1/courses/{self.course}/assignments/{assignment}/submissions",
                          files={"file": (filename, data)}, headers=headers or {})

    def wait_graded(self, user: str, submission_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(user) as c:
            while time.monotonic() < deadline:
                body = c.get(f"/api/v1/submissions/{submission_id}").json()
                if body.get("status") in ("graded", "failed"):
                    return dict(body)
                time.sleep(0.2)
        raise TimeoutError(f"submission {submission_id} not graded in {timeout} s: {body}\n"
                           f"worker log:\n{self.log('worker')[-3000:]}")

    def grade(self, user: str, assignment: str, filename: str, data: bytes,
              timeout: float = 120) -> dict[str, Any]:
        response = self.submit(user, assignment, filename, data)
        assert response.status_code == 202, response.text
        return self.wait_graded(user, response.json()["id"], timeout)


def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env["AUTOGRADER_DATA_DIR"] = str(workdir / "var")
    env["AUTOGRADER_SWEEP_INTERVAL_SECONDS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def distributed_stack(workdir: Path, workers: int = 1, extra_env: dict[str, str] | None = None,
                      concurrency: int = 1) -> Stack:
    database = create_database()
    env = base_env(workdir)
    env["AUTOGRADER_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    env["AUTOGRADER_BROKER_URL"] = fresh_redis_db()
    env.update(extra_env or {})
    port = free_port()
    stack = Stack(base_url=f"http://127.0.0.1:{port}", env=env, workdir=workdir,
                  database=database)
    try:
        cli(env, "migrate")
        api = stack.start("api", "serve", "--port", str(port))
        for i in range(workers):
            stack.start_worker(f"worker{i}" if i else "worker", concurrency=concurrency)
        wait_http(f"{stack.base_url}/healthz", proc=api)
    except BaseException:
        stack.stop()
        raise
    return stack


def embedded_stack(workdir: Path) -> Stack:
    env = base_env(workdir)
    port = free_port()
    stack = Stack(base_url=f"http://127.0.0.1:{port}", env=env, workdir=workdir)
    proc = stack.start("up", "up", "--port", str(port))
    try:
        wait_http(f"{stack.base_url}/healthz", timeout=90, proc=proc)
        text = stack.log("up")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].startswith("ag_"):
                stack.tokens[parts[0]] = parts[2]
    except BaseException:
        stack.stop()
        raise
    return stack


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:4000]
