"""At most N requests inside the application at once; the others wait their turn, for a
bounded time, then get a 503 with Retry-After and a sentence.

Why a limit: a request's database session keeps its pooled connection from its first
query to the request's end, across the awaits between its thread-pool hops. With more
requests in flight than pooled connections, every thread can end up waiting for a
connection held by a request that itself waits for a thread. Admitting fewer requests
than there are connections makes that impossible.

Why it cannot deadlock: a request takes one permit and nothing inside the application
takes a second one (the pages call the services directly, never the app again); a
waiting request holds nothing; no wait is longer than `inflight_wait_seconds`; and a
request that holds a permit while its client is slow to send the body is ended by the
upload's own deadlines (api/multipart.py), so the service frees itself.

Not counted: event streams (long-lived; they hold no connection while they wait) and
/metrics and /healthz (one short thread-pool hop each; they must answer under load).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
NOT_COUNTED = re.compile(r"(/events/?$)|(^/metrics$)|(^/healthz$)")
#: Connections left for the sweeper, /metrics, /healthz and event-stream polls.
RESERVED = 6
RETRY_AFTER = 5


def default_limit() -> int:
    from core.db import get_engine

    pool = get_engine().pool
    size = getattr(pool, "size", lambda: 5)()
    overflow = max(0, int(getattr(pool, "_max_overflow", 0)))
    return max(4, size + overflow - RESERVED)


class Permits:
    """A first-come first-served counter of permits with a bounded wait."""

    def __init__(self, limit: int | None = None, wait_seconds: float = 30.0) -> None:
        self._limit = limit
        self.wait_seconds = wait_seconds
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit = default_limit()
        return self._limit

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def snapshot(self) -> dict[str, int]:
        return {"limit": self.limit, "in_use": self.in_use, "waiting": self.waiting}

    async def acquire(self) -> bool:
        """True once a permit is held; False after `wait_seconds` without one."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            async with asyncio.timeout(self.wait_seconds):
                await future
            return True
        except TimeoutError:
            if future.done() and not future.cancelled():
                return True  # the permit was handed over just as the wait ended
            return False
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # handed over, but the request is gone: pass it on
            raise
        finally:
            if not future.done():
                future.cancel()
            try:
                self._waiters.remove(future)
            except ValueError:
                pass

    def release(self) -> None:
        """Hand the permit to the longest waiter, or give it back."""
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # in_use stays the same: the permit moves
                return
        self.in_use -= 1


class InFlightLimit:
    def __init__(self, app: ASGIApp, permits: Permits) -> None:
        self.app = app
        self.permits = permits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or NOT_COUNTED.search(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if not await self.permits.acquire():
            await busy(send, self.permits)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.permits.release()


async def busy(send: Any, permits: Permits) -> None:
    detail = (
        f"The service is busy: {permits.limit} requests are being answered and yours "
        f"waited {permits.wait_seconds:g} s for its turn; nothing was changed. "
        f"Please try again in {RETRY_AFTER} seconds."
    )
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
