"""The self-check of an uploaded assignment, as a task on the cpu queue.

The API stores the uploaded folder's bundle in the blob store and a `publications`
row naming it (core/publishing.py); this task claims the row, fetches and verifies
the bundle through the worker's local cache (worker/content.py: the same path as a
grading job's assignment version, no shared folder), runs graders.selfcheck on it
with this worker's sandboxes, and writes the report back to the row. The API, which
is waiting on the row, publishes or refuses. Idempotent: a second delivery finds the
row taken and does nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from typing import Any

from core.blobs import get_blob_store
from core.db import get_sessionmaker
from core.publishing import claim_check, record_check
from core.queue import SELFCHECK_TASK
from graders.selfcheck_report import CheckResult
from worker.celery_app import app
from worker.content import MissingContent, local_cache

log = logging.getLogger("autograder.worker")


@app.task(name=SELFCHECK_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def selfcheck_publication(publication_id: str) -> str:
    maker = get_sessionmaker()
    with maker() as session:
        row = claim_check(session, publication_id, platform.node())
        if row is None:
            log.info("publication %s: nothing to do (taken, finished or given up)", publication_id)
            return "skipped"
        attempt, slug, version, sha = row.attempt, row.slug, row.version, row.bundle_sha256
    log.info("publication %s: self-check of %s version %s", publication_id, slug, version)
    status, report, detail = run_check(sha, slug, version)
    with maker() as session:
        written = record_check(session, publication_id, attempt, status, report, detail)
    log.info(
        "publication %s: %s%s",
        publication_id,
        status,
        "" if written else " (the API stopped waiting; not recorded)",
    )
    return status


def run_check(bundle_sha256: str, slug: str, version: str) -> tuple[str, list[dict[str, Any]], str]:
    """(passed | failed | error, the report's rows, a sentence)."""
    from graders.selfcheck import check_assignment
    from worker.sandbox.launcher import sandbox_provider

    try:
        folder = local_cache().assignment_folder(get_blob_store(), bundle_sha256, slug, version)
    except MissingContent as exc:
        return "error", [], f"The worker could not fetch the uploaded folder: {exc}"
    try:
        result = check_assignment(folder, sandbox_provider)
    except Exception as exc:  # the instructor's own Python (tests.py...) may raise anything
        log.warning("publication self-check of %s raised", slug, exc_info=True)
        where = str(exc).replace(f"{folder}/", "").replace(str(folder), "the folder")
        return (
            "failed",
            [],
            (f"The self-check could not run the assignment: {type(exc).__name__}: {where}"[:2000]),
        )
    rows = report_rows(result)
    if result.ok:
        return "passed", rows, "The self-check passed."
    failing = [r for r in result.rows if not r.ok]
    return (
        "failed",
        rows,
        (
            "The self-check failed: "
            + "; ".join(f"{r.variant} (expected {r.expectation}): {r.problem}" for r in failing[:3])
            + (f"; and {len(failing) - 3} more" if len(failing) > 3 else "")
        )[:2000],
    )


def report_rows(result: CheckResult) -> list[dict[str, Any]]:
    rows = []
    for r in result.rows:
        row = dataclasses.asdict(r)
        row["problem"] = row["problem"][:1000]
        row["weak"] = r.weak
        rows.append(row)
    return rows
