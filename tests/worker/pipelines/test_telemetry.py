"""Training telemetry (worker.pipelines.telemetry) and the reporter's part in it, on a fake
clock: when events are written, what they say, and how many a long stage writes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.db.models import JobEvent
from app.schemas.jobs import EVENT_KIND_DOC, TELEMETRY_FIELDS
from app.services.job_eta import Measurement, estimate
from worker.pipelines.errors import JobCanceled
from worker.pipelines.progress import MemoryReporter
from worker.pipelines.telemetry import (
    TELEMETRY_EVERY_STEPS,
    TELEMETRY_MAX_EVENTS,
    TELEMETRY_MIN_INTERVAL_S,
    StepSample,
    TelemetryPolicy,
    TrainMeter,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def meter(policy: TelemetryPolicy, clock: Clock, **kw: Any) -> tuple[TrainMeter, list[Any]]:
    out: list[dict[str, Any]] = []
    return TrainMeter(out.append, policy=policy, clock=clock, elapsed=lambda: clock.t - 100.0,
                      **kw), out  # fmt: skip


def run(m: TrainMeter, clock: Clock, steps: range, total: int, *, dt: float = 0.5,
        loss: float = 1.0, batch: int = 8) -> None:  # fmt: skip
    for step in steps:
        clock.t += dt
        m(StepSample(step, total, loss + step, 1e-3, batch))


def test_events_every_n_steps_with_interval_means_and_rates() -> None:
    clock = Clock()
    m, out = meter(TelemetryPolicy(every_steps=4, min_interval_s=0.0), clock, later_steps=30)
    run(m, clock, range(1, 11), total=10)  # 0.5 s a step, loss 1 + step
    assert [e["step"] for e in out] == [4, 8, 10]  # every 4 steps, and the last
    first, second, last = out
    assert first["loss"] == pytest.approx((2 + 3 + 4 + 5) / 4) and first["loss_steps"] == 4
    assert second["loss"] == pytest.approx((6 + 7 + 8 + 9) / 4)
    assert last["loss"] == pytest.approx((10 + 11) / 2) and last["loss_steps"] == 2
    # the first step is not timed (its start is unknown): 3 steps in 1.5 s
    assert first["steps_per_s"] == pytest.approx(2.0) and first["examples_per_s"] == 16.0
    assert second["steps_per_s"] == pytest.approx(2.0) and second["stage_steps_per_s"] == 2.0
    assert last["elapsed_s"] == pytest.approx(5.0) and last["learning_rate"] == 1e-3
    assert [e["remaining_steps"] for e in out] == [36, 32, 30]  # this stage's + later ones
    assert [e["total_steps"] for e in out] == [10, 10, 10]
    assert set(first) == set(TELEMETRY_FIELDS)  # what the API documents, key for key


def test_no_event_sooner_than_the_minimum_interval() -> None:
    clock = Clock()
    m, out = meter(TelemetryPolicy(every_steps=1, min_interval_s=2.0), clock)
    run(m, clock, range(1, 21), total=20)  # 0.5 s a step: at most one event in 2 s
    assert [e["step"] for e in out] == [5, 9, 13, 17, 20]


def test_a_100k_step_stage_writes_a_bounded_number_of_events() -> None:
    clock = Clock()
    policy = TelemetryPolicy()
    m, out = meter(policy, clock)
    run(m, clock, range(1, 100_001), total=100_000, dt=0.2)
    assert policy.stride(100_000) == math.ceil(100_000 / TELEMETRY_MAX_EVENTS)
    assert len(out) <= TELEMETRY_MAX_EVENTS + 1 and out[-1]["step"] == 100_000
    assert len(out) == 200
    # a short stage: every TELEMETRY_EVERY_STEPS steps at the most
    assert TelemetryPolicy().stride(1000) == TELEMETRY_EVERY_STEPS


def test_the_api_documents_the_policy() -> None:
    assert f"every {TELEMETRY_EVERY_STEPS} optimizer steps" in EVENT_KIND_DOC
    assert f"once every {TELEMETRY_MIN_INTERVAL_S:g} s" in EVENT_KIND_DOC
    assert f"at most {TELEMETRY_MAX_EVENTS + 1} times per training stage" in EVENT_KIND_DOC


def test_a_single_step_stage_has_no_rate_and_a_nan_loss_is_null() -> None:
    clock = Clock()
    m, out = meter(TelemetryPolicy(), clock)
    m(StepSample(1, 1, float("nan"), 1e-4, 4))
    assert len(out) == 1
    assert out[0]["loss"] is None and out[0]["steps_per_s"] is None
    assert out[0]["stage_steps_per_s"] is None and out[0]["remaining_steps"] == 0


def test_a_stage_trained_in_several_calls_counts_its_own_steps() -> None:
    """Method structured: two recoveries of 3 steps make one stage of 6."""
    clock = Clock()
    m, out = meter(TelemetryPolicy(every_steps=2, min_interval_s=0.0), clock, total=6)
    for offset in (0, 3):
        record = m.at(offset)
        for step in (1, 2, 3):
            clock.t += 1.0
            record(StepSample(step, 3, 0.5, 1e-3, 8))
    assert [(e["step"], e["total_steps"]) for e in out] == [(2, 6), (4, 6), (6, 6)]
    assert out[-1]["stage_steps_per_s"] == pytest.approx(1.0)


def test_the_time_between_segments_is_not_counted_as_training() -> None:
    """Method structured: 1 s a step in each recovery, and 100 s of calibration and planning
    between them (no samples): the rates are of the training alone."""
    clock = Clock()
    m, out = meter(TelemetryPolicy(every_steps=4, min_interval_s=0.0), clock, total=12)
    for offset in (0, 6):
        record = m.at(offset)
        for step in range(1, 7):
            clock.t += 1.0
            record(StepSample(step, 6, 0.5, 1e-3, 8))
        clock.t += 100.0  # the next step's planning
    assert [e["step"] for e in out] == [4, 8, 12]
    # the segment's first step is untimed: 5 steps in 5 s each segment
    assert [e["stage_steps_per_s"] for e in out] == [1.0, 1.0, 1.0]
    assert [e["steps_per_s"] for e in out] == [1.0, 1.0, 1.0]
    assert out[1]["examples_per_s"] == 8.0  # step 8 alone (7, the segment's first, untimed)
    assert [e["loss_steps"] for e in out] == [4, 4, 4]


def test_the_api_estimate_of_a_stage_trained_in_segments() -> None:
    """The meter's events read by the API's estimate (app.services.job_eta) on a synthetic
    timeline: two recoveries of 150 steps at 0.2 s a step with 300 s of planning between
    them. While the first trains, the estimate is its true end of training without the
    planning (nothing foretells it); during the planning it stays ahead of now; once the
    second trains, it is the true end again (the planning not counted as training)."""
    clock = Clock()
    events: list[tuple[float, dict[str, Any]]] = []
    m = TrainMeter(lambda d: events.append((clock.t, d)), policy=TelemetryPolicy(),
                   clock=clock, elapsed=lambda: clock.t - 100.0, total=300)  # fmt: skip
    t0 = datetime(2026, 1, 2, tzinfo=UTC)

    def eta(i: int, now: float) -> float:
        t, data = events[i]
        event = JobEvent(kind="telemetry", stage="recover", data=data,
                         created_at=t0 + timedelta(seconds=t))  # fmt: skip
        got = estimate(Measurement.of(event), status="running", stage="recover",
                       now=t0 + timedelta(seconds=now))  # fmt: skip
        assert got is not None
        return (got - t0).total_seconds()

    ends = []
    for offset in (0, 150):
        record = m.at(offset)
        for step in range(1, 151):
            clock.t += 0.2
            record(StepSample(step, 150, 0.5, 1e-3, 8))
        ends.append(clock.t)
        clock.t += 300.0  # the next step's calibration and planning
    first = [i for i, (t, _) in enumerate(events) if t <= ends[0]]
    # segment 1's last event: the end of training were there no planning
    assert eta(first[-1], events[first[-1]][0]) == pytest.approx(ends[0] + 150 * 0.2)
    for now in (ends[0] + 60, ends[0] + 299):  # planning: the steps left still ahead
        assert eta(first[-1], now) > now + 20
    later = len(first)  # the second segment's first event, and its last one's end
    assert events[later][1]["stage_steps_per_s"] == pytest.approx(5.0)
    assert eta(later, events[later][0]) == pytest.approx(ends[1])


def test_a_resumed_stage_times_only_its_own_steps() -> None:
    clock = Clock()
    m, out = meter(TelemetryPolicy(every_steps=3, min_interval_s=0.0), clock)
    run(m, clock, range(41, 47), total=46, dt=0.25)  # resumed at step 40
    assert [e["step"] for e in out] == [43, 46]
    assert out[0]["stage_steps_per_s"] == pytest.approx(4.0)


def test_the_reporter_counts_the_later_training_stages_and_stops_on_cancel() -> None:
    clock = Clock()
    rep = MemoryReporter(telemetry=TelemetryPolicy(every_steps=1, min_interval_s=0), clock=clock)
    plan = [("load", 1.0), ("finetune_dense", 1.0), ("evaluate_dense", 1.0), ("recover", 1.0),
            ("qat", 1.0), ("evaluate", 1.0)]  # fmt: skip
    rep.start(plan, steps={"finetune_dense": 10, "recover": 20, "qat": 5})
    rep.stage("finetune_dense")
    clock.t += 3.0
    train_meter = rep.train_meter()
    train_meter(StepSample(1, 10, 0.7, 1e-3, 8))
    rep.stage("recover")
    rep.train_meter()(StepSample(20, 20, 0.3, 0.0, 8))
    stages = [(stage, data["remaining_steps"]) for stage, data in rep.telemetry_log]
    assert stages == [("finetune_dense", 9 + 20 + 5), ("recover", 5)]
    assert rep.telemetry_log[0][1]["elapsed_s"] == pytest.approx(3.0)

    class Canceling(MemoryReporter):
        def _write_telemetry(self, stage: str | None, progress: float, data: Any) -> bool:
            return True

    canceling = Canceling()
    canceling.start(plan)
    canceling.stage("qat")
    with pytest.raises(JobCanceled):
        canceling.train_meter()(StepSample(1, 1, 0.1, 1e-3, 8))
