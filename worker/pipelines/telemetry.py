"""Training telemetry: what a training stage writes as `telemetry` events while it trains.

`train` hands a `StepSample` to its `telemetry` callable after every optimizer step; a
`TrainMeter` (made by the reporter for the open stage, `BaseReporter.train_meter`) averages
the loss since its last event, measures the throughput and writes an event when both
`every_steps` steps and `min_interval_s` seconds have passed since the last one, and always
at the stage's last step.

The volume is bounded: the step stride is at least ceil(total / max_events), so a training
stage writes at most `max_events` + 1 telemetry events per attempt (the defaults: at most
201 for a stage of any length, e.g. one every 500 steps of a 100k-step stage, and never more
than one per 10 s before its last). A job trains in at most three stages (finetune_dense,
recover, qat): at most 603 telemetry events per attempt.

Each event's data (the API documents it, app.schemas.jobs.TELEMETRY_FIELDS):
step, total_steps: the stage's optimizer steps done and planned; loss: the mean training
loss of the steps since the last event (`loss_steps` of them; null if none was finite);
learning_rate: that of the last step; steps_per_s, examples_per_s: the throughput since the
last event; stage_steps_per_s: over the stage's training this attempt (null until a second
step has been timed); elapsed_s: seconds since the stage began; remaining_steps: the steps
left in this stage and in the training stages planned after it (what the API's time-left
estimate divides by stage_steps_per_s).

A stage that trains in several segments (method structured: a recovery after each pruning
step, with calibration and the timed planning rounds in between, in the same `recover`
stage) measures training only: each segment (`TrainMeter.at`) restarts the rates at its first
step, and the stage's rate adds up the segments' steps and seconds, not the time between
them. (The API's estimate, app.services.job_eta, then treats a gap without events longer than
the last events' spacing as time that trained nothing.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TELEMETRY_EVERY_STEPS = 50  # an event at most every this many optimizer steps...
TELEMETRY_MIN_INTERVAL_S = 10.0  # ...and at most every this many seconds...
TELEMETRY_MAX_EVENTS = 200  # ...and at most this many (plus the last) per training stage


@dataclass(frozen=True)
class StepSample:
    """One optimizer step as `train` saw it."""

    step: int  # steps done, this one included
    total: int  # steps planned
    loss: float
    learning_rate: float  # the rate this step used
    examples: int  # training items in the step's batch


@dataclass(frozen=True)
class TelemetryPolicy:
    every_steps: int = TELEMETRY_EVERY_STEPS
    min_interval_s: float = TELEMETRY_MIN_INTERVAL_S
    max_events: int = TELEMETRY_MAX_EVENTS

    def stride(self, total: int) -> int:
        """Steps between two events of a stage of `total` steps."""
        return max(1, self.every_steps, math.ceil(total / max(1, self.max_events)))


@dataclass(frozen=True)
class _Mark:
    time: float
    step: int
    examples: int  # examples counted (after the first step) up to this mark


def _rate(amount: float, seconds: float) -> float | None:
    return round(amount / seconds, 4) if amount > 0 and seconds > 0 else None


class TrainMeter:
    """One training stage's telemetry. `total`: the stage's steps (default: each sample's);
    `later_steps`: those of the training stages planned after it; `emit` writes an event's
    data; `elapsed` gives the seconds since the stage began."""

    def __init__(
        self,
        emit: Callable[[dict[str, Any]], None],
        *,
        policy: TelemetryPolicy,
        clock: Callable[[], float],
        elapsed: Callable[[], float],
        total: int | None = None,
        later_steps: int = 0,
    ) -> None:
        self._emit = emit
        self.policy = policy
        self._clock = clock
        self._elapsed = elapsed
        self.total = total
        self.later_steps = later_steps
        self.events = 0
        self._first: _Mark | None = None  # the segment's first step (rates start there)
        self._mark: _Mark | None = None  # the last event (or the segment's first step)
        self._last: _Mark | None = None  # the last step seen
        self._timed_steps = 0  # steps timed in the stage's earlier segments...
        self._timed_s = 0.0  # ...and their seconds
        self._examples = 0
        self._loss_sum = 0.0
        self._loss_n = 0
        self._steps_since = 0
        self._last_step = 0  # the step of the last event

    def at(self, offset: int) -> Callable[[StepSample], None]:
        """Samples of one `train` call that starts `offset` steps into the stage (a stage that
        trains in several calls: method structured's recoveries), a new segment: the rates
        restart at its first step, so the time since the last one is not counted as training."""
        self._segment()

        def record(sample: StepSample) -> None:
            self(dataclasses.replace(sample, step=sample.step + offset))

        return record

    def _segment(self) -> None:
        """The segment so far ends: its timed steps and seconds are kept for the stage's rate."""
        if self._first is not None and self._last is not None:
            self._timed_steps += self._last.step - self._first.step
            self._timed_s += self._last.time - self._first.time
        self._first = self._mark = None

    def __call__(self, s: StepSample) -> None:
        now = self._clock()
        total = self.total if self.total is not None else s.total
        if self._first is None:  # a segment's first step: untimed (its start is unknown)
            self._first = self._mark = _Mark(now, s.step, self._examples)
            if self._last is None:
                self._last_step = s.step - 1
        else:
            self._examples += s.examples
        self._last = _Mark(now, s.step, self._examples)
        self._steps_since += 1
        if math.isfinite(s.loss):
            self._loss_sum += s.loss
            self._loss_n += 1
        assert self._mark is not None
        final = s.step >= total
        due = (
            s.step - self._last_step >= self.policy.stride(total)
            and now - self._mark.time >= self.policy.min_interval_s
        )
        if not (due or final):
            return
        mark, first = self._mark, self._first
        data = {
            "step": s.step,
            "total_steps": total,
            "loss": round(self._loss_sum / self._loss_n, 6) if self._loss_n else None,
            "loss_steps": self._steps_since,
            "learning_rate": s.learning_rate,
            "steps_per_s": _rate(s.step - mark.step, now - mark.time),
            "examples_per_s": _rate(self._examples - mark.examples, now - mark.time),
            "stage_steps_per_s": _rate(
                self._timed_steps + s.step - first.step, self._timed_s + now - first.time
            ),
            "elapsed_s": round(self._elapsed(), 3),
            "remaining_steps": max(0, total - s.step) + self.later_steps,
        }
        self._mark = _Mark(now, s.step, self._examples)
        self._last_step = s.step
        self._loss_sum, self._loss_n, self._steps_since = 0.0, 0, 0
        self.events += 1
        self._emit(data)
