"""A deadline on reading a request body, so a slow client cannot keep a slot for long.

Timed from the first time the app asks for the body (not while the request waits for a slot):

- no chunk for ``idle_timeout_s`` while the app waits for one, or
- once ``grace_s`` have passed, fewer than ``min_rate`` bytes a second on average (the wait
  for the next chunk ends at the moment the average would fall under it)

ends the request. The average is over the whole body so far, so it is an overall deadline
too: a body of ``length`` bytes (its Content-Length, or the route's limit when chunked) is
complete, or cut off, ``max(grace_s, length / min_rate)`` after it was first read, whatever
its pace (a burst first buys no more: the next gap is still cut at ``idle_timeout_s``). At
the default 64 KiB/s a 2 GiB upload has 9.1 h, a 1 MiB JSON body 16 s; one API key holds at
most two upload slots (app.concurrency). On a cut the app is told the client went away (so
it stops and cleans up), whatever it answers to that is dropped, and the client gets a 408
``request_timeout`` problem with ``Connection: close``, so the server closes the connection.
Once the body is complete the waits for a disconnect (event streams) are not timed. Requests
without a body pass through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.problems import problem_response

log = logging.getLogger("scalpel.admission")


class BodyDeadline:
    def __init__(
        self, app: ASGIApp, *, idle_timeout_s: float, min_rate: float, grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.app = app
        self.idle_timeout_s = idle_timeout_s
        self.min_rate = min_rate
        self.grace_s = grace_s
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        read = _TimedBody(self, receive)
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if read.tripped is not None:
                return  # the app's answer to the disconnect we made up: the client gets a 408
            if message["type"] == "http.response.start":
                started = True
                read.done = True  # an early answer (413, 401...): the rest is never timed
            await send(message)

        try:
            await self.app(scope, read.receive, guarded_send)
        except Exception:
            if read.tripped is None:
                raise
        if read.tripped is None or started:
            return
        log.warning(
            "request body cut off (%s) after %d bytes in %.1f s: %s %s", read.tripped,
            read.received, self.clock() - (read.started_at or 0.0), scope["method"],
            scope["path"],
        )  # fmt: skip
        detail = (
            f"no request body data for {self.idle_timeout_s:g} s"
            if read.tripped == "idle"
            else f"request body slower than {self.min_rate:g} bytes/s"
        )
        response = problem_response(
            Request(scope), status=408, code="request_timeout", title="Request timeout",
            detail=detail, headers={"Connection": "close"},
        )  # fmt: skip
        await response(scope, _disconnected, send)

    def allowance(self, started_at: float, received: int, now: float) -> float:
        """How long the next chunk may take to arrive."""
        wait = self.idle_timeout_s
        if self.min_rate > 0:
            rate_deadline = started_at + max(self.grace_s, received / self.min_rate)
            wait = min(wait, rate_deadline - now)
        return max(wait, 0.0)


class _TimedBody:
    def __init__(self, limits: BodyDeadline, receive: Receive) -> None:
        self.limits = limits
        self._receive = receive
        self.started_at: float | None = None
        self.received = 0
        self.done = False
        self.tripped: str | None = None  # "idle" or "rate"

    async def receive(self) -> Message:
        if self.tripped is not None:
            return {"type": "http.disconnect"}
        if self.done:
            return await self._receive()
        clock = self.limits.clock
        now = clock()
        if self.started_at is None:
            self.started_at = now
        wait = self.limits.allowance(self.started_at, self.received, now)
        with anyio.move_on_after(wait):
            message = await self._receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                self.done = not message.get("more_body", False)
            else:
                self.done = True
            return message
        idle = wait >= self.limits.idle_timeout_s
        self.tripped = "idle" if idle else "rate"
        return {"type": "http.disconnect"}


def has_body(headers: Headers) -> bool:
    """The request says it has a body (a positive Content-Length, or chunked)."""
    length = headers.get("content-length", "0").strip()
    return "transfer-encoding" in headers or (length.isdigit() and int(length) > 0)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
