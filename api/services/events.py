"""A submission's status as server-sent events, for the JSON API and the pages.

The stream lasts minutes: it never pins a pooled connection (each poll opens its own
short session), and it ends after the final status or when the client goes away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from api.services.presenters import submission_view
from core.db import get_sessionmaker
from core.jobs import FINAL_STATUSES
from core.models import Submission

POLL_SECONDS = 0.1
MAX_POLLS = 36000  # at most about an hour
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def current_state(submission_id: str) -> dict[str, object]:
    with get_sessionmaker()() as session:
        submission = session.get(Submission, submission_id)
        assert submission is not None
        view = submission_view(session, submission, viewer_is_staff=False)
        return {"id": submission_id, "status": view.status, "score": view.score,
                "max_score": view.max_score}


async def status_events(submission_id: str,
                        disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
    """Call only for a submission the caller may see (access.visible_submission)."""
    last: str | None = None
    yield "retry: 1000\n\n"
    for _ in range(MAX_POLLS):
        if await disconnected():
            return
        state = await run_in_threadpool(current_state, submission_id)
        if state["status"] != last:
            last = str(state["status"])
            yield f"event: status\ndata: {json.dumps(state)}\n\n"
            if last in FINAL_STATUSES:
                return
        await asyncio.sleep(POLL_SECONDS)
