"""Running the real service for tests: PostgreSQL databases, Redis, processes.

A `Stack` is one deployment: `autograder migrate`, `autograder serve` and one or more
`autograder worker` processes against a fresh PostgreSQL database and its own Redis
database number, or `autograder up` (embedded) with its own data dir and port.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from tests.support.paths import BIN, ROOT

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS", "redis://127.0.0.1:6379")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_database(admin_url: str = PG_ADMIN_URL) -> str:
    name = f"ag_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str, admin_url: str = PG_ADMIN_URL) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(admin_url: str, database: str) -> str:
    """The service's SQLAlchemy URL for `database` on the server of `admin_url`."""
    rest = admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+psycopg://{rest}/{database}"


REDIS_LOCK_KEY = "autograder-test:owner"
REDIS_LOCK_SECONDS = 3 * 3600


def fresh_redis_db() -> str:
    """A Redis database number no other test session uses right now, emptied.

    Several pytest runs may share one Redis server: a worker of one run must never
    consume another run's tasks, so each run takes a database with a lock key.
    """
    owner = uuid.uuid4().hex
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        try:
            if client.set(REDIS_LOCK_KEY, owner, nx=True, ex=REDIS_LOCK_SECONDS):
                for key in client.scan_iter(count=1000):
                    if key != REDIS_LOCK_KEY.encode():
                        client.delete(key)
                return f"{REDIS_URL}/{number}"
        finally:
            client.close()
    raise RuntimeError("every Redis database 1-15 is taken by another test run")


def release_redis_db(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "autograder"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


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
    #: A Redis database this stack took from fresh_redis_db, released when it stops.
    owned_redis: str | None = None
    pg_admin_url: str = PG_ADMIN_URL

    # -- processes ------------------------------------------------------------
    def start(self, name: str, *args: str) -> subprocess.Popen[Any]:
        log = open(self.workdir / f"{name}.log", "ab")  # lives with the process
        proc = subprocess.Popen(
            [str(BIN / "autograder"), *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_worker(
        self, name: str = "worker", queues: str = "cpu,gpu", concurrency: int = 1
    ) -> subprocess.Popen[Any]:
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
            drop_database(self.database, self.pg_admin_url)
        if self.owned_redis:
            release_redis_db(self.owned_redis)
            self.owned_redis = None

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

    def submit(
        self,
        user: str,
        assignment: str,
        filename: str,
        data: bytes,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        with self.client(user) as c:
            return c.post(
                f"/api/v1/courses/{self.course}/assignments/{assignment}/submissions",
                files={"file": (filename, data)},
                headers=headers or {},
            )

    def wait_graded(self, user: str, submission_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(user) as c:
            while time.monotonic() < deadline:
                body = c.get(f"/api/v1/submissions/{submission_id}").json()
                if body.get("status") in ("graded", "failed"):
                    return dict(body)
                time.sleep(0.2)
        raise TimeoutError(
            f"submission {submission_id} not graded in {timeout} s: {body}\n"
            f"worker log:\n{self.log('worker')[-3000:]}"
        )

    def grade(
        self, user: str, assignment: str, filename: str, data: bytes, timeout: float = 120
    ) -> dict[str, Any]:
        response = self.submit(user, assignment, filename, data)
        assert response.status_code == 202, response.text
        return self.wait_graded(user, response.json()["id"], timeout)


def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env["AUTOGRADER_DATA_DIR"] = str(workdir / "var")
    env["AUTOGRADER_SWEEP_INTERVAL_SECONDS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def distributed_stack(
    workdir: Path,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    concurrency: int = 1,
    pg_admin_url: str | None = None,
    broker_url: str | None = None,
) -> Stack:
    """A fresh database on the shared PostgreSQL (or the server of `pg_admin_url`) and a
    fresh database number of the shared Redis (or `broker_url`, used as given)."""
    admin_url = pg_admin_url or PG_ADMIN_URL
    database = create_database(admin_url)
    env = base_env(workdir)
    env["AUTOGRADER_DATABASE_URL"] = database_url(admin_url, database)
    env["AUTOGRADER_BROKER_URL"] = broker_url or fresh_redis_db()
    env.update(extra_env or {})
    port = free_port()
    stack = Stack(
        base_url=f"http://127.0.0.1:{port}",
        env=env,
        workdir=workdir,
        database=database,
        pg_admin_url=admin_url,
        owned_redis=None if broker_url else env["AUTOGRADER_BROKER_URL"],
    )
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


# -- private PostgreSQL and Redis servers, for tests that stop and restart them ----------
# (the shared ones on 5432/6379 serve other people's tests: never stop or flush them)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return path


class PostgresCluster:
    """A throw-away PostgreSQL cluster of our own (initdb in a temp folder, own port).

    As root, the server runs as the `postgres` user (it refuses to run as root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ag-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        argv = list(cmd)
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=timeout)

    def init(self) -> PostgresCluster:
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(
            _pg_bin("initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.data}'\nmax_connections = 300\n"
                "shared_buffers = 64MB\n"
            )
        return self

    def start(self) -> None:
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "pg.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A redis-server of our own, without persistence: a restart loses every message."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ag-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")  # lives with the process
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
