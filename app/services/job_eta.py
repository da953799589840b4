"""The time left of a running job: `eta_at` of `GET /v1/jobs/{id}` (and of the list).

The worker's telemetry events (worker.pipelines.telemetry) carry what is needed, so the
estimate needs neither torch nor the job's plan here: `remaining_steps` (the optimizer steps
left in the stage and in the training stages planned after it) and `stage_steps_per_s` (the
stage's measured rate, of its training alone). The estimate is the time those steps take at
that rate, from the event's time while the job is still in the event's stage; between
training stages (the job's stage is another one: an evaluation, a pruning step) the remaining
steps wait for the current stage, so it is counted from now instead (an estimate that can
only be late).

Within a training stage, work that does not train can also run: method structured calibrates
and times its planning rounds between its recoveries, all in the `recover` stage. No
telemetry event comes then, and an estimate from the last event's time would fall to now and
stay there. So the next event is expected within the last events' spacing (`loss_steps` at
`steps_per_s`: the steps since the event before it, at their rate); once that has passed with
no event, fewer steps than that spacing holds have trained since (an event would have been
written), and the remaining steps are counted from now less one spacing, the least they can
still take: the estimate stays ahead of now by the remaining time less one spacing while
nothing trains (so it reaches now only when no more than one spacing of steps is left), it
moves on continuously from the event's, and it can again only be late. An event without a
spacing (none the worker writes once it has a rate) is counted from its time.

It covers training only, and is honest about it: None when the job is not running, when no
telemetry event of the current attempt (written since `started_at`) has a measured rate yet,
and once no training is left (the stages after the last training one are not estimated).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Job, JobEvent
from app.repositories import events as events_repo


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class Measurement:
    """What one telemetry event says about the time left."""

    stage: str | None
    at: datetime  # when it was written
    remaining_steps: float
    steps_per_s: float | None  # the stage's rate; None: not measured yet
    spacing_s: float | None = None  # the seconds the next event is expected within

    @classmethod
    def of(cls, event: JobEvent) -> Measurement | None:
        data = event.data or {}
        remaining = _number(data.get("remaining_steps"))
        if remaining is None:
            return None
        rate = _number(data.get("stage_steps_per_s"))
        return cls(event.stage, _utc(event.created_at), remaining, rate, _spacing(data, rate))


def _spacing(data: dict[str, Any], stage_rate: float | None) -> float | None:
    """The event's steps since the one before it over their rate (else the stage's)."""
    steps = _number(data.get("loss_steps"))
    rate = _number(data.get("steps_per_s")) or stage_rate
    if steps is None or steps <= 0 or rate is None or rate <= 0:
        return None
    return steps / rate


def estimate(
    m: Measurement | None, *, status: str, stage: str | None, now: datetime
) -> datetime | None:
    """When the job's remaining training steps should be done (None: not known)."""
    if status != "running" or m is None or m.steps_per_s is None or m.steps_per_s <= 0:
        return None
    if m.remaining_steps <= 0:
        return None
    now = _utc(now)
    if stage != m.stage:  # another stage: the steps wait for it
        start = max(m.at, now)
    elif m.spacing_s is None or now - m.at <= timedelta(seconds=m.spacing_s):
        start = m.at  # training, the next event not due yet
    else:  # overdue: less than one spacing of steps trained since the event
        start = now - timedelta(seconds=m.spacing_s)
    return start + timedelta(seconds=m.remaining_steps / m.steps_per_s)


def eta_at(session: Session, job: Job, now: datetime | None = None) -> datetime | None:
    """The job's estimate from its newest telemetry event of this attempt (a query only for
    a running job)."""
    if job.status != "running" or job.started_at is None:
        return None
    event = events_repo.latest_telemetry(session, job.id)
    if event is None or _utc(event.created_at) < _utc(job.started_at):
        return None  # none yet, or an earlier attempt's
    return estimate(
        Measurement.of(event), status=job.status, stage=job.stage, now=now or datetime.now(UTC)
    )
