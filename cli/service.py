"""The service's processes: migrate, serve, worker, and `up` (all of it, embedded)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from core.settings import get_settings

DEMO_USERS = (
    ("instructor", "instructor"),
    ("ta", "ta"),
    ("alice", "student"),
    ("bob", "student"),
)


def migrate() -> str:
    """Schema to the latest version, then the bundled course into the database."""
    from core.blobs import adopt_folder_blobs
    from core.course_sync import sync_course
    from core.db import session_scope
    from core.migrate import upgrade

    settings = get_settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    upgrade()
    adopt_folder_blobs()  # blobs of the folder store from before a shared one, if any
    with session_scope() as session:
        meta = sync_course(session, settings.course_dir)  # and each assignment's bundle
    return meta.slug


def cmd_migrate(args: argparse.Namespace) -> int:
    slug = migrate()
    print(f"database is up to date; course {slug!r} loaded from {get_settings().course_dir}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    # Several processes (uvicorn's workers) when one process's CPU is the limit: each
    # has its own pool, in-flight limit, sweeper and event listener.
    processes = args.processes or get_settings().api_processes
    uvicorn.run(
        "cli.serve_app:app",
        host=args.host,
        port=args.port,
        log_level="info",
        workers=processes,
        timeout_graceful_shutdown=5,
    )
    return 0


def worker_argv(queues: str, concurrency: int) -> list[str]:
    return [
        "worker",
        "--queues",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--hostname",
        f"autograder-{os.getpid()}@%h",
    ]


def cmd_worker(args: argparse.Namespace) -> int:
    os.environ["AUTOGRADER_WORKER_QUEUES"] = args.queues
    from worker.celery_app import app

    app.worker_main(worker_argv(args.queues, args.concurrency))
    return 0


def demo_tokens(course_slug: str) -> list[tuple[str, str, str]]:
    from core.accounts import add_user
    from core.db import session_scope

    tokens = []
    with session_scope() as session:
        for name, role in DEMO_USERS:
            tokens.append((name, role, add_user(session, name, role, course_slug)))
    return tokens


#: A worker that died is started again after 1, 2, 4 ... up to 30 s; one that had run
#: for WORKER_STABLE_SECONDS before it died starts the count afresh.
WORKER_BACKOFF_FIRST = 1.0
WORKER_BACKOFF_MAX = 30.0
WORKER_STABLE_SECONDS = 60.0


def _say(line: str) -> None:
    print(f"autograder up: {line}", flush=True)


class Child:
    """One process of `autograder up`, in a process group (session) of its own."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> int:
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started = time.monotonic()
        return self.proc.pid

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal_group(self, sig: int) -> None:
        """Signal its whole group: the process and what it started (a worker's pool)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False


def _stop_all(children: list[Child], grace: float = 10.0) -> None:
    """SIGTERM each child (a Celery worker then stops its pool itself), wait up to
    `grace` s, then SIGKILL whatever is left of their groups."""
    for child in children:
        if child.exited() is None:
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        child.wait(deadline - time.monotonic())
    for child in children:  # stragglers of a group whose leader is gone, or slow ones
        child.signal_group(signal.SIGKILL)
        child.wait(5.0)


def cmd_up(args: argparse.Namespace) -> int:
    """Everything in one: the API, and a worker kept running (restarted if it dies).

    The API's exit ends it all (with status 1); SIGINT/SIGTERM stop all of it with
    status 0 (a second signal kills at once).
    """
    settings = get_settings()
    slug = migrate()
    tokens = demo_tokens(slug)
    env = dict(os.environ, AUTOGRADER_DATA_DIR=str(settings.resolved_data_dir))
    worker = Child(
        "worker",
        [
            sys.executable,
            "-m",
            "cli.main",
            "worker",
            "--queues",
            "cpu,gpu",
            "--concurrency",
            str(settings.worker_slots),
        ],
        env,
    )
    api = Child(
        "API",
        [sys.executable, "-m", "cli.main", "serve", "--host", args.host, "--port", str(args.port)],
        env,
    )
    children = [api, worker]
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if stopping:  # asked twice: no more waiting
            for child in children:
                child.signal_group(signal.SIGKILL)
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    status = 0
    try:
        _say(f"worker started (pid {worker.start()})")
        api.start()
        base = f"http://{args.host}:{args.port}"
        print(f"\nautograder is starting at {base} (data in {settings.resolved_data_dir})")
        print(f"course {slug!r}; demo users and their tokens:")
        for name, role, token in tokens:
            print(f"  {name:<11} {role:<11} {token}")
        print(
            "\ntry: curl -H 'Authorization: Bearer <token>' "
            f"{base}/api/v1/courses/{slug}/assignments"
        )
        print("Ctrl-C stops the API and the worker.\n", flush=True)
        status = _supervise(api, worker, stopping)
    finally:
        _stop_all(children)
    return status


def _supervise(api: Child, worker: Child, stopping: list[int]) -> int:
    """Until a signal or the API's end: restart the worker each time it dies."""
    failures = restarts = 0
    restart_at: float | None = None
    while not stopping:
        code = api.exited()
        if code is not None:
            _say(f"the API process exited ({code}); stopping")
            return 1
        code = worker.exited()
        if restart_at is None and code is not None:
            assert worker.proc is not None
            ran = time.monotonic() - worker.started
            worker.signal_group(signal.SIGKILL)  # its pool processes, if any were left
            failures = 1 if ran >= WORKER_STABLE_SECONDS else failures + 1
            delay = min(WORKER_BACKOFF_MAX, WORKER_BACKOFF_FIRST * 2 ** (failures - 1))
            _say(
                f"the worker process (pid {worker.proc.pid}) exited ({code}) after "
                f"{ran:.0f} s; restarting it in {delay:g} s (restart {restarts + 1})"
            )
            restart_at = time.monotonic() + delay
        if restart_at is not None and time.monotonic() >= restart_at:
            restarts += 1
            restart_at = None
            _say(f"worker restarted (pid {worker.start()}, restart {restarts})")
        time.sleep(0.2)
    return 0
