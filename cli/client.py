"""The command-line client of the HTTP API: `submit`, `status`, `gradebook`, `regrade`.

It talks to a running service over HTTP only (docs/API.md), like a student's script
would. The server and the token come from `--server` / `--token` or the environment
variables AUTOGRADER_SERVER (default http://127.0.0.1:8000) and AUTOGRADER_TOKEN.

Exit codes: 0 done (`submit`: graded); 1 the service could not grade it, or a regrade
had jobs that failed; 2 bad usage (no token, no such file); 3 the server refused the
request (its sentence is printed); 4 the server could not be reached; 5 gave up waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.http_client import (
    DEFAULT_SERVER,
    GAVE_UP,
    NOT_GRADED,
    OK,
    USAGE,
    Api,
    ClientError,
)

if TYPE_CHECKING:
    from rich.console import Console

FINAL = ("graded", "failed")


# -- the commands' arguments ---------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Register the client's commands on `autograder`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=None,
        help=f"the service's URL (env AUTOGRADER_SERVER, default {DEFAULT_SERVER})",
    )
    common.add_argument("--token", default=None, help="your API token (env AUTOGRADER_TOKEN)")

    submit = sub.add_parser(
        "submit", parents=[common], help="upload a notebook or model file and wait for its feedback"
    )
    submit.add_argument("file", help=".ipynb, .py, .safetensors, .pt or .onnx")
    submit.add_argument("--assignment", "-a", required=True, help="e.g. hw1-training-basics")
    submit.add_argument("--course", default="dlp")
    submit.add_argument(
        "--no-wait",
        action="store_true",
        help="print the submission's id and return without waiting",
    )
    submit.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for grading (default 900)"
    )
    submit.add_argument(
        "--idempotency-key",
        default=None,
        help="send the same key again to get the same submission back",
    )
    submit.add_argument("--json", action="store_true", help="print the submission as JSON")
    submit.set_defaults(func=_run(cmd_submit))

    status = sub.add_parser(
        "status", parents=[common], help="show a submission's status, score and feedback"
    )
    status.add_argument("submission_id")
    status.add_argument("--wait", action="store_true", help="wait until it is graded")
    status.add_argument("--timeout", type=float, default=900.0)
    status.add_argument("--json", action="store_true", help="print the submission as JSON")
    status.set_defaults(func=_run(cmd_status))

    gradebook = sub.add_parser(
        "gradebook", parents=[common], help="download a course's gradebook.csv (staff)"
    )
    gradebook.add_argument("--course", required=True)
    gradebook.add_argument(
        "--output", "-o", default=None, help="write it to this file (default: standard output)"
    )
    gradebook.add_argument(
        "--long", action="store_true", help="one row per student and exercise (?format=long)"
    )
    gradebook.set_defaults(func=_run(cmd_gradebook))

    regrade = sub.add_parser(
        "regrade",
        parents=[common],
        help="grade a submission, or all of an assignment's, again (staff)",
    )
    which = regrade.add_mutually_exclusive_group(required=True)
    which.add_argument("--submission", help="a submission's id")
    which.add_argument("--assignment", help="every submission of this assignment")
    regrade.add_argument("--course", default="dlp")
    regrade.add_argument("--exercise", default=None, help="only this exercise")
    regrade.add_argument("--reason", default="", help="kept in the job history")
    regrade.add_argument(
        "--version",
        default=None,
        help="grade with this earlier version of the assignment (default: the current one)",
    )
    regrade.add_argument("--wait", action="store_true", help="show progress until it is done")
    regrade.add_argument("--timeout", type=float, default=3600.0)
    regrade.set_defaults(func=_run(cmd_regrade))


def _run(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except ClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    run.__name__ = command.__name__
    return run


# -- showing things ------------------------------------------------------------------


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 120  # piped into a file or a log: no terminal to fit
    return console


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:g}"


def print_submission(sub: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    out = _console()
    status = sub.get("status", "?")
    colour = {"graded": "green", "failed": "red", "running": "cyan"}.get(status, "yellow")
    head = Text.assemble(
        (f"{sub.get('assignment')}", "bold"),
        f" · {sub.get('filename')} · ",
        (status, f"bold {colour}"),
        f" · submission {sub.get('id')}",
    )
    out.print(head)
    if sub.get("late"):
        out.print(Text(f"Submitted late ({sub.get('late_seconds', 0) / 3600:.1f} h).", "yellow"))
    if status == "failed":
        out.print(
            Text(
                "The service could not grade this submission (not your fault): "
                f"{sub.get('error') or 'no reason recorded'}",
                "red",
            )
        )
    exercises = sub.get("exercises") or []
    if exercises:
        table = Table(show_lines=False, expand=False)
        table.add_column("Exercise", style="bold", overflow="fold")
        table.add_column("Test")
        table.add_column("Outcome")
        table.add_column("Points", justify="right")
        table.add_column("Feedback", overflow="fold")
        for ex in exercises:
            first = True
            for t in ex.get("tests", []):
                outcome = t.get("outcome", "")
                style = (
                    "green"
                    if outcome == "passed"
                    else ("yellow" if outcome in ("timeout", "oom") else "red")
                )
                table.add_row(
                    ex["slug"] if first else "",
                    t.get("name", ""),
                    Text(outcome, style),
                    f"{_fmt(t.get('score'))}/{_fmt(t.get('max_score'))}",
                    t.get("feedback") or "",
                )
                first = False
            hidden = ex.get("hidden_tests")
            if hidden:
                table.add_row(
                    ex["slug"] if first else "",
                    f"{hidden['count']} hidden test(s)",
                    "",
                    f"{_fmt(hidden['score'])}/{_fmt(hidden['max_score'])}",
                    "details are shown after the deadline",
                )
                first = False
            table.add_row(
                "",
                Text("exercise total", "italic"),
                "",
                Text(f"{_fmt(ex.get('score'))}/{_fmt(ex.get('max_score'))}", "bold"),
                "",
                end_section=True,
            )
        out.print(table)
    for cell in sub.get("cells") or []:
        out.print(
            Text(
                f"Cell {cell.get('index', '?')} did not run "
                f"({str(cell.get('status', '')).replace('_', ' ')}):",
                "yellow",
            )
        )
        out.print(Text(str(cell.get("message", "")).rstrip()))
    if sub.get("score") is not None:
        line = f"Score: {_fmt(sub['score'])} / {_fmt(sub.get('max_score'))}"
        if sub.get("penalty_percent"):
            line += (
                f" (late penalty {_fmt(sub['penalty_percent'])}%, "
                f"before it {_fmt(sub.get('raw_score'))})"
            )
        out.print(Text(line, "bold"))


def wait_for_grading(
    api: Api, submission_id: str, timeout: float, initial: str = "queued"
) -> dict[str, Any]:
    """Follow the event stream (polling if it breaks) with a spinner until a final status."""
    import httpx
    from rich.status import Status

    err = _console(stderr=True)
    deadline = time.monotonic() + timeout
    last = initial
    shown: set[str] = set()

    def note(status: str) -> None:
        spinner.update(f"[bold]{status}[/bold] · submission {submission_id}")
        if not err.is_terminal and status not in shown:
            err.print(f"status: {status}")
        shown.add(status)

    with Status(
        f"[bold]{last}[/bold] · submission {submission_id}", console=err, spinner="dots"
    ) as spinner:
        note(last)
        while time.monotonic() < deadline:
            try:
                for event in api.events(submission_id):
                    last = str(event.get("status", last))
                    note(last)
                    if last in FINAL or time.monotonic() > deadline:
                        break
            except httpx.HTTPError:
                # The stream broke or stayed quiet; ask directly, then listen again.
                time.sleep(1.0)
            sub = api.json("GET", f"/api/v1/submissions/{submission_id}")
            last = sub.get("status", last)
            note(last)
            if last in FINAL:
                return dict(sub)
    raise ClientError(
        f"gave up waiting after {timeout:g} s; the submission is still {last}. "
        f"Check later with `autograder status {submission_id}`.",
        GAVE_UP,
    )


# -- the commands --------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ClientError(f"there is no file {args.file!r}.", USAGE)
    api = Api(args)
    try:
        key = args.idempotency_key or f"cli-{uuid.uuid4().hex}"
        err = _console(stderr=True)
        size = path.stat().st_size
        with err.status(f"uploading {path.name} ({size / 1024:.0f} KiB)"), path.open("rb") as fh:
            created = api.json(
                "POST",
                f"/api/v1/courses/{args.course}/assignments/{args.assignment}/submissions",
                files={"file": (path.name, fh)},
                headers={"Idempotency-Key": key},
            )
        submission_id = created["id"]
        err.print(
            f"submitted {path.name} to {args.assignment}: submission {submission_id}"
            + (" (late)" if created.get("late") else "")
        )
        if args.no_wait:
            if args.json:
                print(json.dumps(created, indent=2))
            else:
                print(submission_id)
            return OK
        sub = wait_for_grading(api, submission_id, args.timeout, created.get("status", "queued"))
        if args.json:
            print(json.dumps(sub, indent=2))
        else:
            print_submission(sub)
        return OK if sub.get("status") == "graded" else NOT_GRADED
    finally:
        api.close()


def cmd_status(args: argparse.Namespace) -> int:
    api = Api(args)
    try:
        sub = api.json("GET", f"/api/v1/submissions/{args.submission_id}")
        if args.wait and sub.get("status") not in FINAL:
            sub = wait_for_grading(api, args.submission_id, args.timeout, sub.get("status"))
        if args.json:
            print(json.dumps(sub, indent=2))
        else:
            print_submission(sub)
        if args.wait and sub.get("status") != "graded":
            return NOT_GRADED
        return OK
    finally:
        api.close()


def cmd_gradebook(args: argparse.Namespace) -> int:
    api = Api(args)
    try:
        params: dict[str, str] = {"format": "long"} if args.long else {}
        # Options that cli/staff.py adds to this same command, passed on when given.
        for name in ("layout", "assignment"):
            value = getattr(args, name, None)
            if value and value != "default":
                params[name] = value
        response = api.request(
            "GET", f"/api/v1/courses/{args.course}/gradebook.csv", params=params or None
        )
        if args.output:
            Path(args.output).write_bytes(response.content)
            rows = max(0, response.content.count(b"\n") - 1)
            print(f"wrote {args.output} ({rows} row{'s' if rows != 1 else ''})", file=sys.stderr)
        else:
            sys.stdout.write(response.text)
            sys.stdout.flush()
        return OK
    finally:
        api.close()


def cmd_regrade(args: argparse.Namespace) -> int:
    api = Api(args)
    body = {"exercise": args.exercise, "reason": args.reason, "version": args.version}
    try:
        if args.submission:
            job = api.json("POST", f"/api/v1/submissions/{args.submission}/regrade", json=body)
            print(f"regrade of submission {args.submission} queued as job {job['job_id']}")
            if not args.wait:
                return OK
            sub = wait_for_grading(api, args.submission, args.timeout, "queued")
            print_submission(sub)
            return OK if sub.get("status") == "graded" else NOT_GRADED
        batch = api.json(
            "POST",
            f"/api/v1/courses/{args.course}/assignments/{args.assignment}/regrade",
            json=body,
        )
        print(
            f"regrade of {args.assignment}: batch {batch['batch_id']}, "
            f"{batch['total']} submission(s)"
        )
        if not args.wait:
            return OK
        state = wait_for_batch(api, batch["batch_id"], args.timeout)
        print(f"done: {state['done']} of {state['total']} regraded, {state['failed']} failed")
        return OK if not state["failed"] else NOT_GRADED
    finally:
        api.close()


def wait_for_batch(api: Api, batch_id: str, timeout: float) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    err = _console(stderr=True)
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("regrading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        console=err,
    ) as progress:
        task = progress.add_task("regrade", total=None, failed=0)
        while True:
            state = api.json("GET", f"/api/v1/regrades/{batch_id}")
            progress.update(
                task,
                total=state["total"],
                completed=state["done"] + state["failed"],
                failed=state["failed"],
            )
            if state["status"] == "done":
                return dict(state)
            if time.monotonic() > deadline:
                raise ClientError(
                    f"gave up waiting after {timeout:g} s: {state['done']} of "
                    f"{state['total']} regraded so far.",
                    GAVE_UP,
                )
            time.sleep(0.5)
