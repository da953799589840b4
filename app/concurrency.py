"""A bound on requests in flight, so the database pool can never deadlock the API.

Sync route handlers and dependencies run on a pool of threads, and a request holds its
database connection from the first query (authentication) until its session closes. Without a
bound, more requests can pass authentication than the pool has connections, their threads
block waiting for a connection, and the requests that hold connections wait for a free thread:
nothing moves until the pool times out. This middleware admits at most ``limit`` requests at
once (the rest wait without holding a thread or a connection) and releases the slot as soon as
the response starts, so long downloads and event streams, whose sessions are already closed,
do not count against it. The liveness check bypasses it.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class InflightLimit:
    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self._semaphore: anyio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:
            self._semaphore = anyio.Semaphore(self.limit)
        semaphore = self._semaphore
        await semaphore.acquire()
        held = True

        async def release_on_start(message: Message) -> None:
            nonlocal held
            if held and message["type"] == "http.response.start":
                held = False
                semaphore.release()
            await send(message)

        try:
            await self.app(scope, receive, release_on_start)
        finally:
            if held:
                semaphore.release()
