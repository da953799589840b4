"""Event streams open at once per API key, in this API process: `events_streams_per_key`
each; one more is a 429 `too_many_streams` with Retry-After. A slot is taken when a stream
is answered and given back when it ends, however it ends. Keys are told apart by the identity
of the key admission authenticated (app.admission_state.admitted_key), not by re-reading the
request's headers."""

from __future__ import annotations

import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.admission_state import KeySlots, Release, admitted_key
from app.errors import TooManyRequests, Unauthenticated
from app.settings import Settings

RETRY_AFTER_S = 5
_SLOTS_LOCK = threading.Lock()


def slots_for(app: FastAPI, settings: Settings) -> KeySlots:
    """The app's stream slots, made on first use."""
    with _SLOTS_LOCK:
        slots: KeySlots | None = getattr(app.state, "event_stream_slots", None)
        if slots is None:
            slots = KeySlots(settings.events_streams_per_key)
            app.state.event_stream_slots = slots
        return slots


def take_stream_slot(request: Request, settings: Settings) -> Release:
    """A slot for one more stream of the request's key, or a 429 `too_many_streams`."""
    key = admitted_key(request.scope.get("state", {}))
    if key is None:  # never under /v1/, which admission authenticates
        raise Unauthenticated("an API key is required: Authorization: Bearer <key>")
    release = slots_for(request.app, settings).take(key)
    if release is None:
        raise TooManyRequests(
            f"this API key already has {settings.events_streams_per_key} event streams open "
            "(per API process); close one or poll the JSON page",
            code="too_many_streams", title="Too many event streams",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip
    return release


class SlotResponse(StreamingResponse):
    """A stream that gives its slot back when it ends, however it ends (finished, closed by
    the client, failed; or never sent: when the response is garbage collected)."""

    def __init__(self, content: AsyncIterator[str], release: Release, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release
        weakref.finalize(self, release)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
