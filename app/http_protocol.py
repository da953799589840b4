"""uvicorn's httptools protocol with a deadline on request headers.

uvicorn times idle keep-alive connections out, but a client that sends the first bytes of a
request and then its headers one slow byte at a time keeps its connection for ever (the
keep-alive timer stops at the first byte). Those connections hold no slot (the app only sees a
request once its headers are complete), but each is a socket and counts against uvicorn's
`limit_concurrency`, so enough of them would turn everyone away. Here a connection whose
request headers are not complete `timeout_s` after it opened, or after the request's first
byte, is closed.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("scalpel.admission")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    _in_headers = False  # a request has begun and its headers are not complete yet

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.warning("closed a connection: request headers incomplete after %g s",
                        self.header_timeout_s)  # fmt: skip
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # Idle between requests is the keep-alive timer's business (unless the next request
        # has already begun).
        if not self._in_headers:
            self._disarm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def with_header_timeout(timeout_s: float) -> type[HeaderDeadlineProtocol]:
    return type(
        "HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": timeout_s}
    )
