"""Publishing an assignment over HTTP, and downloading its starter notebook.

The upload is received without a database connection (api/multipart.py bounds it),
unpacked and checked into a temp folder of this request's own (core/publishing.py),
its bundle stored; then a `publications` row is committed and the self-check task sent
to the cpu queue. The request waits for a worker's outcome, reading the row every
POLL_SECONDS in short sessions (no connection is held while it waits), for at most
`publish_timeout_seconds`; the temp folder is removed whatever happens.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import tarfile
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.multipart import receive_file
from api.schemas import ExerciseOut
from api.schemas_publishing import PublishedOut
from api.services.access import Membership, get_assignment, get_course
from api.settings import get_api_settings
from core.archives import ArchiveLimits
from core.blobs import get_blob_store
from core.db import get_sessionmaker
from core.errors import NotFound, Unavailable, Unreadable
from core.models import Assignment, AssignmentVersion
from core.publishing import (
    FINISHED,
    MAX_STARTER_BYTES,
    Candidate,
    Outcome,
    abandon,
    open_publication,
    outcome,
    prepare_candidate,
    publish_passed,
)
from core.queue import send_selfcheck

POLL_SECONDS = 0.5
STARTER_MEMBER = "notebooks/starter.ipynb"


async def publish(request: Request, user_id: int, course: str) -> PublishedOut:
    """The whole publish: receive, unpack and check, self-check on a worker, publish."""
    settings = get_api_settings()
    received = await receive_file(
        request,
        settings.publish_max_bytes,
        wanted="bundle",
        example="curl -F bundle=@my-assignment.tar.gz ...",
    )
    limits = ArchiveLimits(
        max_bytes=settings.publish_max_unpacked_bytes, max_entries=settings.publish_max_entries
    )
    work = Path(tempfile.mkdtemp(prefix="publish-"))
    try:
        candidate = await run_in_threadpool(prepare_candidate, bytes(received.data), work, limits)
        del received
        publication_id = await run_in_threadpool(_start, user_id, course, candidate)
        result = await _wait(publication_id, settings.publish_timeout_seconds)
        return await run_in_threadpool(_conclude, publication_id, result, candidate, user_id)
    finally:
        await run_in_threadpool(shutil.rmtree, work, True)


def _session() -> Session:
    return get_sessionmaker()()


def _start(user_id: int, course_slug: str, candidate: Candidate) -> str:
    with _session() as db:
        course = get_course(db, course_slug)
        publication_id = open_publication(db, course, user_id, candidate)
        if not send_selfcheck(publication_id):
            abandon(db, publication_id, "the broker could not be reached")
            raise Unavailable(
                "The work queue cannot be reached, so the assignment cannot be "
                "self-checked; nothing was published. Try again in a minute.",
                retry_after=30,
            )
    return publication_id


def _read(publication_id: str) -> Outcome:
    with _session() as db:
        return outcome(db, publication_id)


async def _wait(publication_id: str, timeout: float) -> Outcome:
    deadline = time.monotonic() + timeout
    while True:
        result = await run_in_threadpool(_read, publication_id)
        if result.status in FINISHED:
            return result
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)

    def give_up() -> bool:
        with _session() as db:
            return abandon(db, publication_id, f"no outcome within {timeout:g} s")

    if not await run_in_threadpool(give_up):
        # The worker finished between the last read and giving up: use its outcome.
        result = await run_in_threadpool(_read, publication_id)
        if result.status in FINISHED:
            return result
    raise Unavailable(
        f"The self-check did not finish within {timeout:g} s (is a worker "
        "consuming the cpu queue?); nothing was published.",
        retry_after=60,
    )


def _conclude(
    publication_id: str, result: Outcome, candidate: Candidate, user_id: int
) -> PublishedOut:
    if result.status == "failed":
        raise Unreadable(result.detail or "The self-check failed.", extra={"report": result.report})
    if result.status == "error":
        raise Unavailable(f"{result.detail} Nothing was published.", retry_after=30)
    with _session() as db:
        stored, previous = publish_passed(db, publication_id, candidate.meta, user_id)
    meta = candidate.meta
    return PublishedOut(
        slug=meta.slug,
        version=meta.version,
        title=meta.title,
        max_score=meta.max_score,
        exercises=[
            ExerciseOut(slug=e.slug, max_score=e.points, kind=e.kind, device=e.device)
            for e in meta.exercises
        ],
        new_version=stored.created,
        previous_version=previous,
        report=list(result.report),
    )


# -- the starter ------------------------------------------------------------------------
def starter_notebook(db: Session, member: Membership, assignment: str) -> tuple[bytes, str]:
    """(the current version's starter notebook, a file name) for an enrolled user."""
    target: Assignment = get_assignment(db, member.course, assignment)
    version = db.get(AssignmentVersion, target.version) if target.version else None
    if version is None:
        raise NotFound(f"{target.slug} has no stored version to take a starter from.")
    data = _starter_of(version.bundle_sha256)
    if data is None:
        raise NotFound(f"{target.slug} has no starter notebook.")
    return data, f"{target.slug}.ipynb"


@lru_cache(maxsize=64)
def _starter_of(bundle_sha256: str) -> bytes | None:
    """The starter inside a bundle (content-addressed: cached by its sha)."""
    bundle = get_blob_store().read(bundle_sha256)
    try:
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
            try:
                member = tar.getmember(STARTER_MEMBER)
            except KeyError:
                return None
            if not member.isfile() or member.size > MAX_STARTER_BYTES:
                return None
            source = tar.extractfile(member)
            return source.read(MAX_STARTER_BYTES) if source is not None else None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise Unavailable(f"The assignment's stored bundle cannot be read ({exc}).") from None
