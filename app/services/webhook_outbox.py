"""The webhook outbox: when a job with a webhook_url ends, a delivery row is written in the
same transaction as the terminal state, so the event is sent (at least once) exactly when the
state change is committed. Also the check of a webhook_url at submission."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import TERMINAL_STATUSES, Job
from app.errors import Unprocessable
from app.repositories import webhooks as webhooks_repo
from app.settings import Settings
from app.webhooks.egress import EgressRefused, check_url

SCALARS = (str, int, float, bool)


def event_type(status: str) -> str:
    return f"job.{status}"


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


def payload(job: Job, now: datetime) -> dict[str, Any]:
    """The event body (app.schemas.webhook_events.WebhookEvent)."""
    finished = job.finished_at or now
    return {
        "type": event_type(job.status),
        "timestamp": now.isoformat(),
        "data": {
            "job_id": str(job.id),
            "status": job.status,
            "error_code": job.error_code,
            "error_message": job.error_message,
            "finished_at": finished.isoformat(),
            "metrics": metrics_summary(job.metrics),
            "artifacts_url": f"/v1/jobs/{job.id}/artifacts",
        },
    }


def record_terminal(session: Session, job: Job, now: datetime | None = None) -> None:
    """Queue the job's end event for delivery (nothing when it has no webhook_url). Call it
    in the transaction that makes the job terminal."""
    if not job.webhook_url or job.status not in TERMINAL_STATUSES:
        return
    when = now or utcnow()
    webhooks_repo.add_delivery(
        session, tenant_id=job.tenant_id, job_id=job.id, event_type=event_type(job.status),
        url=job.webhook_url, payload=payload(job, when), now=when,
    )  # fmt: skip


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
