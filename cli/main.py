"""The `autograder` command: the service's pieces and the staff's tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cli import staff

Command = Callable[[argparse.Namespace], int]


def _lazy(module: str, name: str) -> Command:
    """Import a command's module only when it runs (torch and friends load slowly)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), name)(args) or 0)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser(
        "up",
        help="embedded all-in-one: migrate, load the course, "
        "start the API and a worker, print demo tokens",
    )
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.set_defaults(func=_lazy("cli.service", "cmd_up"))

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--processes",
        type=int,
        default=None,
        help="API processes sharing the port (default: "
        "AUTOGRADER_API_PROCESSES, else 1); see docs/operating.md",
    )
    serve.set_defaults(func=_lazy("cli.service", "cmd_serve"))

    worker = sub.add_parser("worker", help="run a grading worker")
    worker.add_argument("--queues", default="cpu", help="comma-separated: cpu, gpu")
    worker.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="parallel grading slots (one per GPU on GPU workers)",
    )
    worker.set_defaults(func=_lazy("cli.service", "cmd_worker"))

    migrate = sub.add_parser("migrate", help="upgrade the database and load the course")
    migrate.set_defaults(func=_lazy("cli.service", "cmd_migrate"))

    user = sub.add_parser("user", help="manage users and tokens")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user, enroll them, print a token")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["student", "ta", "instructor"])
    add.add_argument("--course", required=True)
    add.add_argument("--full-name")
    add.add_argument("--email")
    add.set_defaults(func=_lazy("cli.users", "cmd_user_add"))
    revoke = user_sub.add_parser("revoke", help="revoke every token of a user")
    revoke.add_argument("name")
    revoke.set_defaults(func=_lazy("cli.users", "cmd_user_revoke"))

    course = sub.add_parser("course", help="course authoring tools")
    course_sub = course.add_subparsers(dest="course_command", required=True)
    check = course_sub.add_parser(
        "check", help="grade an assignment's solution, starter, variants and alternatives"
    )
    check.add_argument("folders", nargs="+", help="assignment folders, e.g. reference/hw1-*")
    check.set_defaults(func=_lazy("cli.course_check", "run"))
    from cli import client, health

    health.add_commands(sub)
    client.add_commands(sub)
    staff.add_commands(sub)
    from cli import assignment

    assignment.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
