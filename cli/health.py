"""`autograder healthcheck api|worker`: exit 0 when the piece on this machine is alive.

For container healthchecks (docker-compose.yml) and any supervisor:
- `api`: GET /healthz answers 200 (the database and the broker answer it);
- `worker`: a worker on this host wrote its heartbeat (core/capacity.py) within
  `worker_expiry_seconds`: its main process runs and reaches the database.
"""

from __future__ import annotations

import argparse
import platform
import sys


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    health = sub.add_parser("healthcheck", help="exit 0 if the API or a worker here is alive")
    which = health.add_subparsers(dest="health_command", required=True)
    api = which.add_parser("api", help="the API answers /healthz with 200")
    api.add_argument("--url", default="http://127.0.0.1:8000/healthz")
    api.set_defaults(func=cmd_api)
    worker = which.add_parser("worker", help="a worker on this host sent its heartbeat")
    worker.add_argument("--host", default=None, help="the worker's host (default: this one)")
    worker.set_defaults(func=cmd_worker)


def cmd_api(args: argparse.Namespace) -> int:
    import httpx

    try:
        response = httpx.get(args.url, timeout=5)
    except httpx.HTTPError as exc:
        print(f"unhealthy: {args.url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(
            f"unhealthy: {args.url} answered {response.status_code}: {response.text[:200]}",
            file=sys.stderr,
        )
        return 1
    print("ok")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from core import capacity
    from core.db import make_engine
    from core.settings import get_settings

    host = args.host or platform.node()
    engine = make_engine(get_settings().resolved_database_url, pooled=False)
    try:
        with Session(engine) as session:
            mine = [w for w in capacity.live_workers(session) if w.host == host]
    except Exception as exc:  # the database is away: the worker cannot grade either
        print(f"unhealthy: database: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if not mine:
        print(
            f"unhealthy: no heartbeat from a worker on {host} within "
            f"{get_settings().worker_expiry_seconds:g} s",
            file=sys.stderr,
        )
        return 1
    for w in mine:
        print(
            f"ok: {w.id} consumes {','.join(w.queues)} ({w.slots} slot(s), {w.device}), "
            f"last heartbeat {w.seen_at.isoformat(timespec='seconds')}"
        )
    return 0
