"""Stage-weighted progress reporting, independent of where it is written.

The pipeline calls `start(plan, steps=...)` once, `stage(name)` at each stage boundary,
`step(fraction)` inside long stages and `metrics({...})` as results come in; a training stage
hands `train` a `train_meter()` for its telemetry events (worker.pipelines.telemetry). Every
stage boundary checks for cancellation; steps check it whenever they write (at most once per
`min_interval_s`), telemetry events too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from worker.pipelines.errors import JobCanceled
from worker.pipelines.telemetry import TelemetryPolicy, TrainMeter


class StagePlan:
    """Maps (stage, fraction within it) to overall progress in [0, 1] by stage weights."""

    def __init__(self, stages: Sequence[tuple[str, float]]) -> None:
        total = sum(w for _, w in stages) or 1.0
        self.names = [n for n, _ in stages]
        self._start: dict[str, float] = {}
        self._weight: dict[str, float] = {}
        acc = 0.0
        for name, w in stages:
            self._start[name] = acc / total
            self._weight[name] = w / total
            acc += w

    def overall(self, stage: str, fraction: float) -> float:
        if stage not in self._start:
            return 0.0
        f = min(max(fraction, 0.0), 1.0)
        return min(1.0, self._start[stage] + self._weight[stage] * f)


class BaseReporter:
    """Throttling and bookkeeping; subclasses say where things are written."""

    def __init__(
        self, *, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
        telemetry: TelemetryPolicy | None = None,
    ) -> None:  # fmt: skip
        self.min_interval_s = min_interval_s
        self._clock = clock
        self.telemetry = telemetry or TelemetryPolicy()
        self._plan = StagePlan([])
        self._train_steps: dict[str, int] = {}
        self.current: str | None = None
        self.progress = 0.0
        self._last_write = -float("inf")
        self.stage_seconds: dict[str, float] = {}
        self._stage_t0 = 0.0

    # subclass hooks: each returns whether a cancel was requested
    def _write_stage(self, stage: str, progress: float) -> bool:
        raise NotImplementedError

    def _write_progress(self, stage: str | None, progress: float) -> bool:
        raise NotImplementedError

    def _write_metrics(self, stage: str | None, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def _cancel_requested(self) -> bool:
        raise NotImplementedError

    def _write_step_metrics(self, stage: str | None, values: dict[str, Any]) -> None:
        """An event only (the job's metrics are left alone); by default nowhere."""

    def _write_telemetry(self, stage: str | None, progress: float, data: dict[str, Any]) -> bool:
        """A telemetry event; returns whether a cancel was requested. By default nowhere."""
        return False

    # pipeline-facing API
    def start(
        self, plan: Sequence[tuple[str, float]], *, steps: Mapping[str, int] | None = None
    ) -> None:
        """The stages and their weights; `steps`: the optimizer steps each training stage
        plans (what telemetry's remaining_steps counts for the stages after the open one)."""
        self._plan = StagePlan(plan)
        self._train_steps = dict(steps or {})

    def later_steps(self) -> int:
        """The planned steps of the training stages after the open one."""
        names = self._plan.names
        after = names[names.index(self.current) + 1 :] if self.current in names else []
        return sum(self._train_steps.get(n, 0) for n in after)

    def train_meter(self, total: int | None = None) -> TrainMeter:
        """The open stage's telemetry, for `train(..., telemetry=...)`; `total`: the stage's
        steps when it trains in several calls (default: the steps `train` is given)."""
        return TrainMeter(
            self._emit_telemetry, policy=self.telemetry, clock=self._clock,
            elapsed=lambda: self._clock() - self._stage_t0, total=total,
            later_steps=self.later_steps(),
        )  # fmt: skip

    def _emit_telemetry(self, data: dict[str, Any]) -> None:
        if self._write_telemetry(self.current, self.progress, data):
            raise JobCanceled(f"canceled during stage {self.current}")

    def _close_stage(self) -> None:
        if self.current is not None:
            self.stage_seconds[self.current] = round(self._clock() - self._stage_t0, 3)

    def seconds_so_far(self) -> dict[str, float]:
        """Each stage's seconds, the open stage's counted up to now (what a checkpoint
        records; the open stage's figure is replaced when it really closes)."""
        seconds = dict(self.stage_seconds)
        if self.current is not None:
            seconds[self.current] = round(self._clock() - self._stage_t0, 3)
        return seconds

    def stage(self, name: str) -> None:
        self._close_stage()
        self.current = name
        self._stage_t0 = self._clock()
        self.progress = max(self.progress, self._plan.overall(name, 0.0))
        self._last_write = self._clock()
        if self._write_stage(name, self.progress):
            raise JobCanceled(f"canceled at stage {name}")

    def end(self) -> None:
        """Close the last stage's timer."""
        self._close_stage()
        self.current = None

    def step(self, fraction: float) -> None:
        if self.current is None:
            return
        self.progress = max(self.progress, self._plan.overall(self.current, fraction))
        now = self._clock()
        if now - self._last_write < self.min_interval_s:
            return
        self._last_write = now
        if self._write_progress(self.current, self.progress):
            raise JobCanceled(f"canceled during stage {self.current}")

    def metrics(self, values: dict[str, Any]) -> None:
        self._write_metrics(self.current, values)

    def step_metrics(self, values: dict[str, Any]) -> None:
        """Per-step values (e.g. accuracy after each pruning step), streamed as events."""
        self._write_step_metrics(self.current, values)

    def check_cancel(self) -> None:
        if self._cancel_requested():
            raise JobCanceled(f"canceled during stage {self.current}")


class MemoryReporter(BaseReporter):
    """Keeps everything in memory; `cancel_after_stage` simulates a cancel request."""

    def __init__(
        self, *, cancel_at_stage: str | None = None, min_interval_s: float = 0.0,
        telemetry: TelemetryPolicy | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        super().__init__(min_interval_s=min_interval_s, clock=clock, telemetry=telemetry)
        self.cancel_at_stage = cancel_at_stage
        self.stages: list[str] = []
        self.values: dict[str, Any] = {}
        self.progress_log: list[float] = []
        self.step_log: list[dict[str, Any]] = []
        self.telemetry_log: list[tuple[str | None, dict[str, Any]]] = []  # (stage, data)

    def _write_stage(self, stage: str, progress: float) -> bool:
        self.stages.append(stage)
        self.progress_log.append(progress)
        return stage == self.cancel_at_stage

    def _write_progress(self, stage: str | None, progress: float) -> bool:
        self.progress_log.append(progress)
        return False

    def _write_metrics(self, stage: str | None, values: dict[str, Any]) -> None:
        self.values.update(values)

    def _write_step_metrics(self, stage: str | None, values: dict[str, Any]) -> None:
        self.step_log.append(values)

    def _write_telemetry(self, stage: str | None, progress: float, data: dict[str, Any]) -> bool:
        self.telemetry_log.append((stage, data))
        return False

    def _cancel_requested(self) -> bool:
        return False
