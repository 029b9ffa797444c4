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
    from core.courses import sync_course
    from core.db import session_scope
    from core.migrate import upgrade

    settings = get_settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    upgrade()
    with session_scope() as session:
        meta = sync_course(session, settings.course_dir)
    return meta.slug


def cmd_migrate(args: argparse.Namespace) -> int:
    slug = migrate()
    print(f"database is up to date; course {slug!r} loaded from {get_settings().course_dir}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run("api.app:app", host=args.host, port=args.port, log_level="info",
                workers=1, timeout_graceful_shutdown=5)
    return 0


def worker_argv(queues: str, concurrency: int) -> list[str]:
    return [
        "worker", "--queues", queues, "--concurrency", str(concurrency), "--pool", "prefork",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--hostname", f"autograder-{os.getpid()}@%h",
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


def cmd_up(args: argparse.Namespace) -> int:
    settings = get_settings()
    slug = migrate()
    tokens = demo_tokens(slug)
    env = dict(os.environ, AUTOGRADER_DATA_DIR=str(settings.resolved_data_dir))
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker", "--queues", "cpu,gpu",
         "--concurrency", str(settings.worker_slots)],
        env=env, start_new_session=True,
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--host", args.host, "--port", str(args.port)],
        env=env, start_new_session=True,
    )
    base = f"http://{args.host}:{args.port}"
    print(f"\nautograder is starting at {base} (data in {settings.resolved_data_dir})")
    print(f"course {slug!r}; demo users and their tokens:")
    for name, role, token in tokens:
        print(f"  {name:<11} {role:<11} {token}")
    print("\ntry: curl -H 'Authorization: Bearer <token>' "
          f"{base}/api/v1/courses/{slug}/assignments")
    print("Ctrl-C stops the API and the worker.\n", flush=True)
    children = [api, worker]

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        for child in children:
            if child.poll() is not None:
                name = "API" if child is api else "worker"
                print(f"the {name} process exited ({child.returncode}); stopping", flush=True)
                stop()
        time.sleep(0.5)
