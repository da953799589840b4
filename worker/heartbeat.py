"""A background thread that proves, every interval, that the worker running a job is alive."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.services.periodic import PeriodicLoop

log = logging.getLogger(__name__)


class Heartbeat(PeriodicLoop):
    """`with Heartbeat(beat, interval_s):` calls beat() every interval_s seconds on a daemon
    thread until the block ends (interval_s <= 0: no thread). beat() returning False (the job
    is no longer running) stops the thread; an exception is logged and the beating goes on."""

    def __init__(self, beat: Callable[[], bool], interval_s: float, *, name: str = "heartbeat"):
        super().__init__(name, interval_s, self._pass)
        self._beat = beat
        self.beats = 0

    def _pass(self) -> None:
        alive = self._beat()
        self.beats += 1
        if not alive:
            log.warning("%s: the job is no longer running; heartbeat stopped", self.name)
            self.stop()
