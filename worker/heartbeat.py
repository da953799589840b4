"""A background thread that proves, every interval, that the worker running a job is alive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)


class Heartbeat:
    """`with Heartbeat(beat, interval_s):` calls beat() every interval_s seconds on a daemon
    thread until the block ends (interval_s <= 0: no thread). beat() returning False (the job
    is no longer running) stops the thread; an exception is logged and the beating goes on."""

    def __init__(self, beat: Callable[[], bool], interval_s: float, *, name: str = "heartbeat"):
        self._beat = beat
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = name
        self.beats = 0

    def start(self) -> None:
        if self._interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self._interval_s))

    def __enter__(self) -> Heartbeat:
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
        while not self._stop.wait(self._interval_s):
            try:
                alive = self._beat()
            except Exception:
                log.warning("%s: heartbeat not written", self._name, exc_info=True)
                continue
            self.beats += 1
            if not alive:
                log.warning("%s: the job is no longer running; heartbeat stopped", self._name)
                return
