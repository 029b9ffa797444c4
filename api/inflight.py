"""At most N requests inside the application at once; the others wait their turn.

Why: a request's database session keeps its pooled connection from its first query to
the request's end, across the awaits between its thread-pool hops (each dependency,
reading the upload, the handler). With more requests in flight than pooled connections
(10 + 20 overflow) plus thread-pool threads (40), every thread can end up waiting for a
connection held by a request that itself waits for a thread: nothing moves until the
pool's 30 s timeout answers 500s, and under a steady rush (200 clients uploading) that
repeats, so almost nothing is accepted. Admitting fewer requests than there are
connections makes that impossible; the others wait here (in order), holding nothing.

Not counted: event streams (long-lived; they hold no connection while they wait) and
/metrics and /healthz (one short thread-pool hop each; they must answer under load).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
NOT_COUNTED = re.compile(r"(/events/?$)|(^/metrics$)|(^/healthz$)")
#: Connections left for the sweeper, /metrics, /healthz and event-stream polls.
RESERVED = 6


def default_limit() -> int:
    from core.db import get_engine

    pool = get_engine().pool
    size = getattr(pool, "size", lambda: 5)()
    overflow = max(0, int(getattr(pool, "_max_overflow", 0)))
    return max(4, size + overflow - RESERVED)


class InFlightLimit:
    def __init__(self, app: ASGIApp, limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or NOT_COUNTED.search(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self.semaphore is None:
            self.semaphore = asyncio.Semaphore(self.limit or default_limit())
        async with self.semaphore:
            await self.app(scope, receive, send)
