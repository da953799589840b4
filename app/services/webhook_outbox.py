"""The webhook outbox: a delivery row is written in the same transaction as the state change
it reports (a job's end; on request its start and each pruning step), so the event is sent
(at least once) exactly when the change is committed. Also the check of a webhook_url at
submission."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import TERMINAL_STATUSES, TERMINAL_WEBHOOK_EVENTS, Job
from app.errors import Unprocessable
from app.repositories import webhooks as webhooks_repo
from app.schemas.common import UtcDateTime
from app.settings import Settings
from app.webhooks.egress import EgressRefused, check_url

SCALARS = (str, int, float, bool)
RUNNING = "job.running"
PRUNING_STEP = "job.pruning_step"
# The key of a metrics event (worker.pipelines.stages.prune.after_prune) that marks it as a
# pruning step's: the step's number in the job, 1, 2, 3, ...
PRUNE_STEP_KEY = "prune_step"
# Every timestamp of a payload as the API writes them (RFC 3339, UTC, `Z`): a naive value
# (SQLite hands those back) is UTC.
_UTC = TypeAdapter(UtcDateTime)


def event_type(status: str) -> str:
    return f"job.{status}"


def rfc3339(value: datetime) -> str:
    return str(_UTC.dump_python(value, mode="json"))


def artifacts_url(job: Job, base_url: str | None) -> str:
    """Absolute under PUBLIC_BASE_URL when it is set, else the path alone."""
    path = f"/v1/jobs/{job.id}/artifacts"
    return f"{base_url}{path}" if base_url else path


def _named_metric(value: Any) -> bool:
    """A task's `primary_metric`-style {name, value} pair (kept whole: it says what the
    number is, `f1` or `accuracy`)."""
    return (
        isinstance(value, dict)
        and set(value) == {"name", "value"}
        and isinstance(value["name"], str)
        and isinstance(value["value"], int | float)
    )


def metrics_summary(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The job's top-level scalar metrics and its {name, value} primary metrics (nested
    breakdowns stay behind GET /v1/jobs/{id})."""
    return {
        k: v
        for k, v in (metrics or {}).items()
        if v is None or isinstance(v, SCALARS) or _named_metric(v)
    }


def payload(job: Job, now: datetime, base_url: str | None = None) -> dict[str, Any]:
    """A terminal event's body (app.schemas.webhook_events.WebhookEvent)."""
    finished = job.finished_at or now
    return {
        "type": event_type(job.status),
        "timestamp": rfc3339(now),
        "data": {
            "job_id": str(job.id),
            "status": job.status,
            "error_code": job.error_code,
            "error_message": job.error_message,
            "finished_at": rfc3339(finished),
            "metrics": metrics_summary(job.metrics),
            "artifacts_url": artifacts_url(job, base_url),
        },
    }


def running_payload(job: Job, now: datetime) -> dict[str, Any]:
    """app.schemas.webhook_events.WebhookRunningEvent."""
    return {
        "type": RUNNING,
        "timestamp": rfc3339(now),
        "data": {
            "job_id": str(job.id), "status": "running", "attempt": job.attempts,
            "started_at": rfc3339(job.started_at or now),
        },
    }  # fmt: skip


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def pruning_step_payload(
    job: Job, values: dict[str, Any], stage: str | None, now: datetime
) -> dict[str, Any]:
    """app.schemas.webhook_events.WebhookPruningStepEvent, from the step's metrics event
    ({prune_step, step, sparsity, speedup?, dev_<primary metric>})."""
    dev = [(k, v) for k, v in values.items() if k.startswith("dev_") and _number(v) is not None]
    primary = {"name": dev[0][0].removeprefix("dev_"), "value": float(dev[0][1])} if dev else None
    return {
        "type": PRUNING_STEP,
        "timestamp": rfc3339(now),
        "data": {
            "job_id": str(job.id), "status": "running", "index": int(values[PRUNE_STEP_KEY]),
            "step": int(values.get("step") or 0), "stage": stage,
            "sparsity": _number(values.get("sparsity")), "speedup": _number(values.get("speedup")),
            "primary_metric": primary,
        },
    }  # fmt: skip


def wants(job: Job, event: str) -> bool:
    """Whether the job sends `event`: it has a webhook_url and its submission asked for it
    (a job stored without a list sends the terminal events)."""
    events = job.webhook_events if job.webhook_events is not None else TERMINAL_WEBHOOK_EVENTS
    return bool(job.webhook_url) and event in events


def _add(session: Session, job: Job, event: str, body: dict[str, Any], when: datetime) -> None:
    assert job.webhook_url is not None
    webhooks_repo.add_delivery(
        session, tenant_id=job.tenant_id, job_id=job.id, event_type=event, url=job.webhook_url,
        payload=body, now=when,
    )  # fmt: skip


def record_terminal(
    session: Session, job: Job, now: datetime | None = None, *, base_url: str | None
) -> None:
    """Queue the job's end event for delivery (nothing when it has no webhook_url or did not
    ask for the event). Call it in the transaction that makes the job terminal. base_url:
    the caller's Settings.public_base_url (None: artifacts_url is the path alone)."""
    if job.status not in TERMINAL_STATUSES or not wants(job, event_type(job.status)):
        return
    when = now or utcnow()
    _add(session, job, event_type(job.status), payload(job, when, base_url), when)


def record_running(session: Session, job: Job, now: datetime | None = None) -> None:
    """Queue `job.running` when the job asked for it. Call it in the transaction that moves
    the job to running (the worker's claim)."""
    if job.status != "running" or not wants(job, RUNNING):
        return
    when = now or utcnow()
    _add(session, job, RUNNING, running_payload(job, when), when)


def record_pruning_step(
    session: Session, job: Job, values: dict[str, Any], stage: str | None,
    now: datetime | None = None,
) -> None:  # fmt: skip
    """Queue `job.pruning_step` when the job asked for it and `values` are a pruning step's
    metrics event. Call it in the transaction that writes that event."""
    if PRUNE_STEP_KEY not in values or not wants(job, PRUNING_STEP):
        return
    when = now or utcnow()
    _add(session, job, PRUNING_STEP, pruning_step_payload(job, values, stage, when), when)


def check_submitted_url(url: str, settings: Settings) -> None:
    """http(s) only, and no literal private, loopback or link-local address unless allowed.
    Names are checked at each delivery (what they resolve to may change)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").strip("[]")
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0]) if host else None
    except ValueError:
        literal = None
    try:
        check_url(
            url, settings.webhook_allow,
            resolver=(lambda _h, _p: [host]) if literal is not None else (lambda _h, _p: []),
        )  # fmt: skip
    except EgressRefused as exc:
        if exc.reason == "resolve" and literal is None:
            return  # a name: resolved at delivery
        raise Unprocessable(
            f"webhook_url refused: {exc}", code="webhook_url_refused", field="webhook_url"
        ) from exc
