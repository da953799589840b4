"""The time-left estimate (app.services.job_eta) on a synthetic timeline of telemetry events,
and the response's eta_seconds counted from eta_at when it is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.db.models import JobEvent
from app.schemas.jobs import JobOut, seconds_until
from app.services.job_eta import Measurement, estimate

T0 = datetime(2026, 1, 2, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def telemetry(stage: str, seconds: float, **data: Any) -> Measurement:
    event = JobEvent(kind="telemetry", stage=stage, data=data, created_at=at(seconds))
    m = Measurement.of(event)
    assert m is not None
    return m


def test_a_steady_job_keeps_one_estimate_and_counts_the_later_stages() -> None:
    """finetune_dense 200 steps at 5 steps/s, then recover 300 steps: 100 s of training in
    all from t=0; each event of a steady run gives the same end."""
    timeline = [  # (time, step, stage rate)
        (10.0, 50, 5.0), (20.0, 100, 5.0), (30.0, 150, 5.0),
    ]  # fmt: skip
    for t, step, rate in timeline:
        m = telemetry("finetune_dense", t, step=step, remaining_steps=200 - step + 300,
                      stage_steps_per_s=rate)  # fmt: skip
        got = estimate(m, status="running", stage="finetune_dense", now=at(t + 3))
        assert got == at(100.0)
    # a slower stage: the rest at its rate (recover: 150 of 300 steps left at 2 steps/s)
    m = telemetry("recover", 175.0, step=150, remaining_steps=150, stage_steps_per_s=2.0)
    assert estimate(m, status="running", stage="recover", now=at(180)) == at(250.0)


def test_between_training_stages_the_steps_left_wait_for_the_current_stage() -> None:
    """Fine-tuning ended at t=40 (300 recovery steps left at 5 steps/s); the job evaluates
    until the recovery starts, so the 60 s count from now, not from t=40."""
    m = telemetry("finetune_dense", 40.0, step=200, remaining_steps=300, stage_steps_per_s=5.0)
    assert estimate(m, status="running", stage="evaluate_dense", now=at(45)) == at(105.0)
    assert estimate(m, status="running", stage="evaluate_dense", now=at(90)) == at(150.0)
    # the stage's own event, seen a little late: still from the event's time
    assert estimate(m, status="running", stage="finetune_dense", now=at(45)) == at(100.0)


def recovering(t: float, step: int, remaining: int) -> Measurement:
    """An event of a recovery at 5 steps/s, 50 steps (10 s) after the one before it."""
    return telemetry("recover", t, step=step, remaining_steps=remaining, stage_steps_per_s=5.0,
                     steps_per_s=5.0, loss_steps=50)  # fmt: skip


def test_planning_inside_the_recovery_stage_is_not_counted_as_training_done() -> None:
    """Method structured, 300 recovery steps in two segments of 150 at 5 steps/s, an event
    every 50 steps (10 s); after the first segment (t=130) the next step's calibration and
    planning rounds run in the same `recover` stage until t=430, with no events. The
    estimate never falls to now: the 150 steps left, less the one spacing of them that may
    have trained since the last event, still lie ahead."""
    events = [recovering(t, step, 300 - step) for t, step in ((110, 50), (120, 100), (130, 150))]
    for m in events:  # training: the next event is due within 10 s, the end stays put
        assert m.spacing_s == pytest.approx(10.0)
        soon = m.at + timedelta(seconds=4)
        assert estimate(m, status="running", stage="recover", now=soon) == at(160.0)
    last = events[-1]
    assert estimate(last, status="running", stage="recover", now=at(140)) == at(160.0)
    for now in range(141, 430, 17):  # planning: overdue, 20 s of training always ahead
        got = estimate(last, status="running", stage="recover", now=at(now))
        assert got == at(now - 10 + 30.0)
        assert seconds_until(got, now=at(now)) == 20.0
    # the second segment's first event, 50 steps in 10 s: the estimate is the event's again
    m = recovering(440, 200, 100)
    assert estimate(m, status="running", stage="recover", now=at(445)) == at(460.0)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"remaining_steps": 100, "stage_steps_per_s": None}, "running"),  # not measured yet
        ({"remaining_steps": 0, "stage_steps_per_s": 4.0}, "running"),  # no training left
        ({"remaining_steps": 100, "stage_steps_per_s": 0.0}, "running"),
        ({"remaining_steps": 100, "stage_steps_per_s": 4.0}, "succeeded"),
        ({"remaining_steps": 100, "stage_steps_per_s": 4.0}, "queued"),
        ({"remaining_steps": 100, "stage_steps_per_s": True}, "running"),  # not a number
    ],
)
def test_unknown_is_none(data: dict[str, Any], status: str) -> None:
    m = Measurement.of(JobEvent(kind="telemetry", stage="recover", data=data, created_at=T0))
    assert estimate(m, status=status, stage="recover", now=at(1)) is None


def test_no_measurement_is_none() -> None:
    assert estimate(None, status="running", stage="recover", now=T0) is None
    bad = JobEvent(kind="telemetry", stage="recover", data={"step": 3}, created_at=T0)
    assert Measurement.of(bad) is None
    naive = JobEvent(kind="telemetry", stage="recover", created_at=T0.replace(tzinfo=None),
                     data={"remaining_steps": 10, "stage_steps_per_s": 1.0})  # fmt: skip
    assert Measurement.of(naive) == Measurement("recover", T0, 10.0, 1.0)  # SQLite's: UTC


def test_eta_seconds_is_counted_when_the_response_is_sent() -> None:
    assert seconds_until(at(90), now=at(30)) == 60.0
    assert seconds_until(at(10), now=at(30)) == 0.0  # overdue
    assert seconds_until(None) is None
    soon = datetime.now(UTC) + timedelta(seconds=120)
    out = JobOut.model_construct(eta_at=soon, eta_seconds=999.0)
    sent = out.model_dump(mode="json", include={"eta_seconds", "eta_at"})
    assert 110 < sent["eta_seconds"] <= 120  # from eta_at, not the value stored
    assert JobOut.model_construct(eta_at=None, eta_seconds=5.0).model_dump(
        include={"eta_seconds"}
    ) == {"eta_seconds": None}
