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
from typing import Literal

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

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


Outcome = Literal["succeeded", "retrying", "failed"]


@dataclass
class DispatchReport:
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def body_of(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":")).encode()


def _name(delivery: WebhookDelivery) -> str:
    return f"{delivery.msg_id} (job {delivery.job_id}, {delivery.event_type})"


def _record(
    session: Session, settings: Settings, delivery: WebhookDelivery,
    result: deliver.AttemptResult, at: datetime,
) -> Outcome | None:  # fmt: skip
    """Write the attempt and what follows from it: the delivery's outcome (succeeded,
    retrying or failed), or None, writing nothing, when its row has vanished since it was
    leased (its job was deleted)."""
    if not webhooks_repo.lock(session, delivery.id):
        return None
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
        return "succeeded"
    retry = None
    if result.retryable:
        retry = next_attempt(
            delivery.created_at, delivery.attempts, at, settings.webhook_backoff_base_s,
            settings.webhook_backoff_cap_s, settings.webhook_max_attempts,
            settings.webhook_max_age_s,
        )  # fmt: skip
    if retry is None:
        delivery.status, delivery.next_attempt_at = "failed", None
        log.warning("webhook %s to %s failed for good: %s", delivery.msg_id, delivery.url,
                    result.error)  # fmt: skip
        return "failed"
    delivery.next_attempt_at = retry
    return "retrying"


def _send(
    session: Session, settings: Settings, client: httpx.Client, delivery: WebhookDelivery,
    now: datetime,
) -> Outcome | None:  # fmt: skip
    secrets = [s.secret for s in ensure_secrets(session, delivery.tenant_id, now)]
    # A secret made just now is committed before it signs anything, and no write is held
    # open across the POST (SQLite: it would block every other writer, a deletion too).
    session.commit()
    result = deliver.attempt(
        client, delivery.url, delivery.msg_id, body_of(delivery), secrets,
        allowed=settings.webhook_allow,
    )  # fmt: skip
    return _record(session, settings, delivery, result, utcnow())


def dispatch_due_webhooks(
    session: Session, settings: Settings, client: httpx.Client, now: datetime | None = None
) -> DispatchReport:
    """One pass over the deliveries due at `now`; commits as it goes. A delivery whose row
    vanishes on the way (its job deleted) is logged and skipped; the rest go on."""
    now = now or utcnow()
    report = DispatchReport()
    due = webhooks_repo.lock_due(session, now=now, limit=BATCH)
    lease = now + timedelta(seconds=settings.webhook_timeout_s + LEASE_MARGIN_S)
    names = [_name(delivery) for delivery in due]  # now: a row gone later cannot be read
    for delivery in due:
        delivery.next_attempt_at = lease
    session.commit()
    for delivery, name in zip(due, names, strict=True):
        try:
            outcome = _send(session, settings, client, delivery, now)
            session.commit()
        except (StaleDataError, ObjectDeletedError, IntegrityError):
            # Gone between its lock and the commit (SQLite locks no row), or before it was
            # read again after an earlier one's rollback.
            session.rollback()
            outcome = None
        if outcome is None:
            log.warning("webhook %s is gone (its job was deleted); skipped", name)
        else:
            report.count(outcome)
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
