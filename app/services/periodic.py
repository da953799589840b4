"""A function run every few seconds on a daemon thread: started once per process (the
reaper and the webhook dispatcher in every worker process), or for the length of a block
(a running job's heartbeat and memory watchdog: `with loop:`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

log = logging.getLogger("scalpel.periodic")


class PeriodicLoop:
    """``step()`` every ``interval_s`` on a daemon thread named ``name``, until stop(); a
    failing pass is logged and the loop goes on. ``interval_s <= 0`` runs no thread; a step
    may call stop() to end its own loop; ``with loop:`` starts it and stops it at the end."""

    def __init__(self, name: str, interval_s: float, step: Callable[[], object]) -> None:
        self.name = name
        self.interval_s = interval_s
        self._step = step
        self._stop = threading.Event()
        self.passes = 0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        if self.interval_s > 0 and self.thread.ident is None:
            self.thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self.thread.ident is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=timeout_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._step()
            except Exception:
                log.exception("%s pass failed", self.name)
            self.passes += 1


_started: dict[tuple[int, str], PeriodicLoop] = {}


def start_once(make: Callable[[], PeriodicLoop], name: str) -> PeriodicLoop:
    """This process's loop called ``name``, made and started on the first call (a forked
    worker process starts its own)."""
    key = (os.getpid(), name)
    if key not in _started:
        loop = make()
        loop.start()
        _started[key] = loop
        log.info("%s started (every %.0f s)", name, loop.interval_s)
    return _started[key]
