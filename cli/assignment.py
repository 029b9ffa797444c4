"""`autograder assignment ...`: instructors' authoring commands.

- `import SOURCE.ipynb --format nbgrader|otter --slug SLUG --out DIR`: an nbgrader or
  Otter Assign (v1) notebook becomes an assignment folder, then the self-check grades it
  (`--no-check` skips that).
- `new SLUG --out DIR`: a scaffold in the project's own format that passes the self-check.
- `publish DIR --course SLUG`: packs the folder and uploads it to a running service
  (`--server`/`--token` or AUTOGRADER_SERVER / AUTOGRADER_TOKEN, an instructor's); the
  service self-checks it on a worker. Prints the version on the last line; a refusal
  prints the self-check's report as a table and exits 1 (3: other refusals, 4: the
  server could not be reached).

`add_commands` returns the `assignment` sub-parsers so that other commands (publishing)
can join them. The heavy imports (torch, the grader) happen only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_commands(sub: Any) -> Any:
    assignment = sub.add_parser(
        "assignment", help="author assignments: import a notebook, scaffold a new one"
    )
    commands = assignment.add_subparsers(dest="assignment_command", required=True)

    imp = commands.add_parser(
        "import", help="an nbgrader or Otter Assign (v1) source notebook -> an assignment folder"
    )
    imp.add_argument("source", type=Path, help="the source (instructor's) notebook")
    imp.add_argument("--format", required=True, choices=["nbgrader", "otter"], dest="fmt")
    imp.add_argument("--slug", required=True, help="the assignment's slug")
    imp.add_argument("--out", required=True, type=Path, help="the folder to write")
    imp.add_argument(
        "--per-assert",
        action="store_true",
        help="nbgrader: credit each top-level assert of a test cell, instead of "
        "all or nothing per cell",
    )
    imp.add_argument("--force", action="store_true", help="replace DIR if it is not empty")
    imp.add_argument(
        "--no-check", action="store_true", help="do not run the self-check on the imported folder"
    )
    imp.set_defaults(func=cmd_import)

    new = commands.add_parser(
        "new", help="scaffold an assignment folder in the project's own format"
    )
    new.add_argument("slug")
    new.add_argument("--out", required=True, type=Path)
    new.add_argument("--force", action="store_true", help="replace DIR if it is not empty")
    new.add_argument(
        "--no-check", action="store_true", help="do not run the self-check on the new folder"
    )
    new.set_defaults(func=cmd_new)

    publish = commands.add_parser(
        "publish", help="upload an assignment folder to a running service (instructor)"
    )
    publish.add_argument("folder", type=Path, help="the assignment folder")
    publish.add_argument("--course", required=True, help="the course's slug")
    publish.add_argument("--server", default=None, help="the service's URL (env AUTOGRADER_SERVER)")
    publish.add_argument(
        "--token", default=None, help="an instructor's API token (env AUTOGRADER_TOKEN)"
    )
    publish.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds to wait for the self-check (default 900)",
    )
    publish.set_defaults(func=cmd_publish)
    return commands


def _self_check(folder: Path) -> int:
    from graders.selfcheck import check_assignment
    from graders.selfcheck_report import format_table
    from worker.sandbox.launcher import sandbox_provider

    result = check_assignment(folder, sandbox_provider)
    print(format_table(result))
    print(
        "self-check: "
        + (
            "ok"
            if result.ok
            else f"FAILED (the folder is kept: fix it and run `autograder course check {folder}`)"
        )
    )
    return 0 if result.ok else 1


def cmd_import(args: argparse.Namespace) -> int:
    from graders.authoring.importer import import_notebook
    from graders.authoring.plan import AuthoringError

    try:
        report = import_notebook(
            args.source, args.fmt, args.slug, args.out, per_assert=args.per_assert, force=args.force
        )
    except AuthoringError as exc:
        print(f"import refused: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if args.no_check else _self_check(report.folder)


def cmd_new(args: argparse.Namespace) -> int:
    from graders.authoring.plan import AuthoringError
    from graders.authoring.scaffold import new_assignment

    try:
        folder = new_assignment(args.slug, args.out, force=args.force)
    except AuthoringError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {folder}: one example exercise (softplus) with its reference, tests, "
        "starter and solution notebooks, two buggy variants and one alternative"
    )
    return 0 if args.no_check else _self_check(folder)


def cmd_publish(args: argparse.Namespace) -> int:
    from cli.publish import publish

    return publish(args)
