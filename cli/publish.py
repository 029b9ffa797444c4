"""`autograder assignment publish DIR --course SLUG`: pack an assignment folder and upload
it (`POST /api/v1/courses/{course}/assignments`), as the HTTP client does (cli/http_client.py).

Exit codes: 0 published (the version is the last line of stdout); 1 the self-check
refused it (its report is printed as a table); 2 bad usage (no token, not a folder);
3 another refusal (its sentence is printed); 4 the server could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.http_client import REFUSED, UNREACHABLE, USAGE, Api, ClientError, error_sentence

NOT_PUBLISHED = 1


def publish(args: argparse.Namespace) -> int:
    from graders.authoring.bundle import pack
    from graders.authoring.plan import AuthoringError

    try:
        data = pack(args.folder)
    except AuthoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    try:
        api = Api(args)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    try:
        return _upload(api, args, data)
    finally:
        api.close()


def _upload(api: Api, args: argparse.Namespace, data: bytes) -> int:
    import httpx

    name = f"{args.folder.resolve().name}.tar.gz"
    print(
        f"uploading {name} ({len(data)} bytes) to {api.server}; the self-check runs on a worker...",
        file=sys.stderr,
    )
    try:
        response = api.http.post(
            f"/api/v1/courses/{args.course}/assignments",
            files={"bundle": (name, data, "application/gzip")},
            timeout=httpx.Timeout(60.0, read=args.timeout),
        )
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the autograder at {api.server}: {exc}.", file=sys.stderr)
        return UNREACHABLE
    body = _json(response)
    if response.status_code == 422 and isinstance(body.get("report"), list):
        print(report_table(body["report"]))
        print(f"not published: {error_sentence(response)}", file=sys.stderr)
        return NOT_PUBLISHED
    if response.status_code >= 400:
        print(f"error: {error_sentence(response)}", file=sys.stderr)
        return REFUSED
    print(report_table(body.get("report") or []))
    state = "a new version" if body.get("new_version") else "unchanged (the same files)"
    previous = body.get("previous_version")
    print(
        f"published {body.get('slug')} in {args.course}: {state}"
        + (f", replacing {previous}" if previous and body.get("new_version") else "")
    )
    print(body.get("version"))
    return 0


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def report_table(rows: list[Any]) -> str:
    """The self-check's rows as `autograder course check` shows them."""
    from graders.selfcheck_report import CheckResult, CheckRow, format_table

    fields = set(CheckRow.__dataclass_fields__)
    result = CheckResult()
    for row in rows:
        if isinstance(row, dict):
            try:
                result.rows.append(CheckRow(**{k: v for k, v in row.items() if k in fields}))
            except TypeError:
                continue
    return format_table(result) if result.rows else "(no self-check rows)"
