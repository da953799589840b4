"""What admission (app.concurrency) keeps per API process, in a module of its own so liveness
(app.services.health) and the per-key caps (app.services.stream_slots) read it without the
middleware: the lanes of slots, and a count of what each API key holds.

A lane holds at most ``limit`` at once and remembers when it last made progress;
``KeySlots`` caps what one API key may hold of something (uploads, body reads, event
streams), keyed by the key's identity (app.deps.key_identity) that admission hands the route
next to its caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from app.tenancy import Caller

CALLER_STATE_KEY = "caller"  # request.state.caller: the Caller admission authenticated
KEY_STATE_KEY = "api_key"  # request.state.api_key: that key's identity (its public prefix)
Release = Callable[[], None]


class Lane:
    """At most ``limit`` holders at once; a waiter gives up after ``wait_s``.

    It keeps what liveness needs: how many hold and wait, and when it last made progress (a
    slot freed, or the lane filling up), and whether anyone has wanted a slot since.
    """

    def __init__(
        self, name: str, limit: int, wait_s: float, *, watched: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.name = name
        self.limit = limit
        self.wait_s = wait_s
        self.watched = watched  # does a stall here mean the API cannot serve?
        self.held = 0
        self.waiting = 0
        self._clock = clock
        self._progress_at = clock()
        self._wanted = False  # someone waited (or gave up) since the last progress
        self._semaphore: anyio.Semaphore | None = None

    def _sem(self) -> anyio.Semaphore:
        if self._semaphore is None:  # made on first use, inside the event loop
            self._semaphore = anyio.Semaphore(self.limit)
        return self._semaphore

    def _took(self) -> None:
        self.held += 1
        if self.held == self.limit:
            self._progress_at = self._clock()
            self._wanted = False

    async def acquire(self) -> bool:
        """True once a slot is held; False after waiting wait_s for one."""
        semaphore = self._sem()
        try:
            semaphore.acquire_nowait()
        except anyio.WouldBlock:
            pass
        else:
            self._took()
            return True
        self.waiting += 1
        self._wanted = True
        try:
            with anyio.move_on_after(self.wait_s):
                await semaphore.acquire()
                self._took()
                return True
            return False
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self.held -= 1
        self._progress_at = self._clock()
        self._wanted = False
        self._sem().release()

    def stalled_for(self) -> float:
        """Seconds this lane has been full and wanted without freeing a slot (0: it is not)."""
        if self.held < self.limit or not (self._wanted or self.waiting):
            return 0.0
        return self._clock() - self._progress_at


class KeySlots:
    """At most ``per_key`` held at once by one API key (thread-safe: event streams are taken
    on the threadpool, uploads and body reads in the event loop)."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> Release | None:
        """A release function (idempotent), or None when the key is at its limit."""
        with self._lock:
            held = self._open.get(key, 0)
            if held >= self.per_key:
                return None
            self._open[key] = held + 1
        done = threading.Event()

        def release() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
                left = self._open.get(key, 0) - 1
                if left > 0:
                    self._open[key] = left
                else:
                    self._open.pop(key, None)

        return release

    def held(self, key: str) -> int:
        with self._lock:
            return self._open.get(key, 0)


@dataclass
class AdmissionState:
    """The lanes of one API process (kept on app.state.admission for /healthz), and what each
    API key holds of the two lanes a slow client fills by its own doing."""

    requests: Lane
    uploads: Lane
    body_reads: Lane
    key_checks: Lane
    uploads_by_key: KeySlots
    body_reads_by_key: KeySlots

    @classmethod
    def of(
        cls, *, requests: int, uploads: int, body_reads: int, key_checks: int, wait_s: float,
        per_key: int = 2, clock: Callable[[], float] = time.monotonic,
    ) -> AdmissionState:  # fmt: skip
        return cls(
            requests=Lane("requests", requests, wait_s, clock=clock),
            # Slow clients fill these two by their own doing, and stand in nobody else's way.
            uploads=Lane("uploads", uploads, wait_s, watched=False, clock=clock),
            body_reads=Lane("body_reads", body_reads, wait_s, watched=False, clock=clock),
            key_checks=Lane("key_checks", key_checks, wait_s, clock=clock),
            uploads_by_key=KeySlots(per_key),
            body_reads_by_key=KeySlots(per_key),
        )

    def lanes(self) -> tuple[Lane, ...]:
        return (self.requests, self.uploads, self.body_reads, self.key_checks)


def admitted_caller(state: dict[str, Any]) -> Caller | None:
    """The caller admission authenticated for this request (scope["state"]), if any."""
    caller = state.get(CALLER_STATE_KEY)
    return caller if isinstance(caller, Caller) else None


def admitted_key(state: dict[str, Any]) -> str | None:
    """The identity of the API key admission authenticated for this request, if any."""
    key = state.get(KEY_STATE_KEY)
    return key if isinstance(key, str) else None
