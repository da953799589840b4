"""Send due webhook deliveries: each is leased (its next_attempt_at pushed past the attempt's
timeout) and committed before the POST, so another dispatcher does not send it at the same
time and a dispatcher that dies mid-send leaves it to be retried (at least once; receivers
dedupe on webhook-id). After the attempt it ends succeeded or failed, or waits for its retry.

Runs every webhook_dispatch_interval_s on a daemon thread in each worker process (started
with the reaper) and on each pass of `python -m app reap`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import WebhookDelivery
from app.repositories import webhooks as webhooks_repo
from app.services.periodic import PeriodicLoop, start_once
from app.services.webhooks import ensure_secrets
from app.settings import Settings, get_settings
from app.webhooks import deliver
from app.webhooks.pinned import pinned_client
from app.webhooks.schedule import next_attempt

log = logging.getLogger("scalpel.webhooks")
BATCH = 20
LEASE_MARGIN_S = 30.0

SessionFactory = Callable[[], Session]


@dataclass
class DispatchReport:
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0


def body_of(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":")).encode()


def _record(
    session: Session, settings: Settings, delivery: WebhookDelivery,
    result: deliver.AttemptResult, at: datetime, report: DispatchReport,
) -> None:  # fmt: skip
    webhooks_repo.add_attempt(
        session, delivery, at=at, status_code=result.status_code, error=result.error,
        duration_ms=result.duration_ms,
    )  # fmt: skip
    delivery.attempts += 1
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    delivery.updated_at = at
    if result.ok:
        delivery.status, delivery.next_attempt_at = "succeeded", None
        report.succeeded += 1
        return
    retry = None
    if result.retryable:
        retry = next_attempt(
            delivery.created_at, delivery.attempts, at, settings.webhook_backoff_base_s,
            settings.webhook_backoff_cap_s, settings.webhook_max_attempts,
            settings.webhook_max_age_s,
        )  # fmt: skip
    if retry is None:
        delivery.status, delivery.next_attempt_at = "failed", None
        report.failed += 1
        log.warning("webhook %s to %s failed for good: %s", delivery.msg_id, delivery.url,
                    result.error)  # fmt: skip
    else:
        delivery.next_attempt_at = retry
        report.retrying += 1


def dispatch_due_webhooks(
    session: Session, settings: Settings, client: httpx.Client, now: datetime | None = None
) -> DispatchReport:
    """One pass over the deliveries due at `now`; commits as it goes."""
    now = now or utcnow()
    report = DispatchReport()
    due = webhooks_repo.lock_due(session, now=now, limit=BATCH)
    lease = now + timedelta(seconds=settings.webhook_timeout_s + LEASE_MARGIN_S)
    for delivery in due:
        delivery.next_attempt_at = lease
    session.commit()
    for delivery in due:
        secrets = [s.secret for s in ensure_secrets(session, delivery.tenant_id, now)]
        result = deliver.attempt(
            client, delivery.url, delivery.msg_id, body_of(delivery), secrets,
            allowed=settings.webhook_allow,
        )  # fmt: skip
        _record(session, settings, delivery, result, utcnow(), report)
        session.commit()
    return report


def make_client(settings: Settings) -> httpx.Client:
    """Connects only to the addresses each delivery's egress check vetted."""
    return pinned_client(settings.webhook_timeout_s)


def dispatch_once(
    factory: SessionFactory | None = None, settings: Settings | None = None
) -> DispatchReport:
    settings = settings or get_settings()
    if factory is None:
        from app.db.session import get_sessionmaker

        factory = get_sessionmaker()
    with factory() as session, make_client(settings) as client:
        return dispatch_due_webhooks(session, settings, client)


class WebhookLoop(PeriodicLoop):
    """dispatch_once every interval_s on a daemon thread, until stop()."""

    def __init__(self, interval_s: float, settings: Settings | None = None) -> None:
        super().__init__("scalpel-webhooks", interval_s, lambda: dispatch_once(settings=settings))


def start_background_dispatcher(settings: Settings | None = None) -> PeriodicLoop | None:
    """Start this process's webhook thread once (None when webhook_dispatch_interval_s is 0)."""
    settings = settings or get_settings()
    if settings.webhook_dispatch_interval_s <= 0:
        return None
    interval = settings.webhook_dispatch_interval_s
    return start_once(lambda: WebhookLoop(interval, settings=settings), "scalpel-webhooks")
