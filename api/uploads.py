"""The upload of a submission over HTTP, shared by the JSON route and the pages' form.

The caller has been found (and the course and assignment checked) with a short session
of its own; the body is then received without holding a database connection
(api/multipart.py counts and bounds it), and accepted in a new session
(api/services/submissions.py).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.multipart import receive_file
from api.schemas import SubmissionCreated
from api.services.submissions import accept_for
from core.settings import get_settings


async def receive_submission(request: Request, user_id: int, course: str, assignment: str,
                             idempotency_key: str | None) -> SubmissionCreated:
    received = await receive_file(request, get_settings().max_upload_bytes)
    return await run_in_threadpool(accept_for, user_id, course, assignment,
                                   received.filename, bytes(received.data), idempotency_key)
