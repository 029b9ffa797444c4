"""The upload of a submission over HTTP, shared by the JSON route and the pages' form.

The caller and what they upload to have been found with one query before the body is
read (api/services/ingest.py: find_target); the body is then received without holding
a database connection (api/multipart.py counts and bounds it), and accepted in one
transaction (api/services/submissions.py: accept_for).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.multipart import receive_file
from api.schemas import SubmissionCreated
from api.services.ingest import UploadTarget, find_target
from api.services.submissions import accept_for
from core.settings import get_settings


async def receive_upload(
    request: Request, target: UploadTarget, idempotency_key: str | None
) -> SubmissionCreated:
    received = await receive_file(request, get_settings().max_upload_bytes)
    return await run_in_threadpool(
        accept_for, target, received.filename, bytes(received.data), idempotency_key
    )


async def receive_submission(
    request: Request, user_id: int, course: str, assignment: str, idempotency_key: str | None
) -> SubmissionCreated:
    """For a caller known by id (the pages: their cookie was checked)."""
    target = await run_in_threadpool(find_target, None, course, assignment, "cookie", user_id)
    return await receive_upload(request, target, idempotency_key)
