"""Staff commands that read the database directly (on the server):
`autograder roster import FILE --course C` and `autograder gradebook --course C`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_commands(sub: Any) -> None:
    """Register the subcommands on `autograder`'s subparsers."""
    roster = sub.add_parser("roster", help="course rosters")
    roster_sub = roster.add_subparsers(dest="roster_command", required=True)
    imp = roster_sub.add_parser(
        "import",
        help="enroll a CSV roster (columns id, name, email) as students; "
        "prints a token for each new user",
    )
    imp.add_argument("file", help="the roster CSV ('-' reads stdin)")
    imp.add_argument("--course", required=True)
    imp.set_defaults(func=cmd_roster_import)

    book = sub.choices.get("gradebook")
    if book is None:
        book = sub.add_parser("gradebook", help="export a course's gradebook as CSV")
        book.add_argument("--course", required=True)
        book.add_argument("--output", "-o", help="write to this file instead of stdout")
        http_command = None
    else:
        # The HTTP client's `gradebook` (cli/client.py): the same command reads the
        # database directly when it has no token (on the server), or with --db.
        http_command = book.get_default("func")
    book.add_argument("--format", choices=["wide", "long"], default="wide")
    book.add_argument("--layout", choices=["default", "canvas"], default="default")
    book.add_argument("--assignment", help="one assignment only (its slug)")
    book.add_argument(
        "--db",
        action="store_true",
        help="read the database directly (AUTOGRADER_* settings), not over HTTP; "
        "the default when no --token/--server (nor AUTOGRADER_TOKEN/_SERVER) "
        "is given",
    )
    book.set_defaults(func=_gradebook_command(http_command))


def _gradebook_command(http_command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        fmt = "long" if getattr(args, "long", False) else args.format
        remote = (
            getattr(args, "token", None)
            or getattr(args, "server", None)
            or os.environ.get("AUTOGRADER_TOKEN")
            or os.environ.get("AUTOGRADER_SERVER")
        )
        if http_command is None or args.db or not remote:
            args.format = fmt
            return cmd_gradebook(args)
        if args.layout != "default" or args.assignment:
            print(
                "error: --layout and --assignment need --db (the database on the server)",
                file=sys.stderr,
            )
            return 2
        args.long = fmt == "long"
        return int(http_command(args))

    return run


def _course(session: Any, slug: str) -> Any:
    from sqlalchemy import select

    from core.models import Course

    return session.scalar(select(Course).where(Course.slug == slug))


def cmd_roster_import(args: argparse.Namespace) -> int:
    import csv

    from core.accounts import AccountError, import_roster, parse_roster
    from core.db import session_scope
    from core.models import AuditEvent

    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        with session_scope() as session:
            course = _course(session, args.course)
            if course is None:
                print(f"error: there is no course {args.course!r}", file=sys.stderr)
                return 2
            results = import_roster(session, course, parse_roster(text))
            counts = {
                s: sum(1 for r in results if r.status == s)
                for s in ("created", "updated", "unchanged")
            }
            session.add(
                AuditEvent(
                    course_id=course.id,
                    action="import_roster",
                    target=f"course:{course.slug}",
                    details={
                        **counts,
                        "via": "cli",
                        "created_users": [r.id for r in results if r.status == "created"],
                    },
                )
            )
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"# {counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged in {args.course!r}; tokens are shown only now",
        file=sys.stderr,
    )
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["id", "status", "role", "token"])
    for r in results:
        writer.writerow([r.id, r.status, r.role, r.token or ""])
    return 0


def cmd_gradebook(args: argparse.Namespace) -> int:
    from api.services.gradebook import GradebookError, gradebook_csv
    from core.db import session_scope

    with session_scope() as session:
        course = _course(session, args.course)
        if course is None:
            print(f"error: there is no course {args.course!r}", file=sys.stderr)
            return 2
        try:
            text = gradebook_csv(session, course, args.format, args.layout, args.assignment)
        except GradebookError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
