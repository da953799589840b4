"""Webhook queries: the delivery outbox, its attempt log and the tenants' signing secrets.
Due deliveries are locked FOR UPDATE SKIP LOCKED (on PostgreSQL), so dispatchers running in
several workers at once never send the same message together."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload

from app.db.models import WebhookAttempt, WebhookDelivery, WebhookSecret


def add_delivery(
    session: Session, *, tenant_id: uuid.UUID, job_id: uuid.UUID, event_type: str, url: str,
    payload: dict[str, Any], now: datetime,
) -> WebhookDelivery:  # fmt: skip
    delivery_id = uuid.uuid4()
    delivery = WebhookDelivery(
        id=delivery_id, tenant_id=tenant_id, job_id=job_id, event_type=event_type,
        msg_id=f"msg_{delivery_id.hex}", url=url, payload=payload, status="pending",
        attempts=0, next_attempt_at=now, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(delivery)
    return delivery


def lock_due(session: Session, *, now: datetime, limit: int) -> list[WebhookDelivery]:
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def add_attempt(
    session: Session, delivery: WebhookDelivery, *, at: datetime, status_code: int | None,
    error: str | None, duration_ms: float,
) -> None:  # fmt: skip
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id, attempted_at=at, status_code=status_code, error=error,
            duration_ms=duration_ms,
        )
    )  # fmt: skip


def for_job(session: Session, job_id: uuid.UUID) -> list[WebhookDelivery]:
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .options(selectinload(WebhookDelivery.attempt_log))
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
    )
    return list(session.scalars(stmt))


def lock_for_job(session: Session, job_id: uuid.UUID) -> list[WebhookDelivery]:
    """The job's deliveries, each locked FOR UPDATE (a job deletion's check: a redelivery,
    or a dispatcher recording an attempt, waits for the deletion and then finds none)."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        .with_for_update()
    )
    return list(session.scalars(stmt))


def lock(session: Session, delivery_id: uuid.UUID) -> bool:
    """Lock the delivery's row FOR UPDATE; False when it is gone (its job was deleted). A
    deletion of its job under way is waited for."""
    stmt = select(WebhookDelivery.id).where(WebhookDelivery.id == delivery_id).with_for_update()
    return session.scalar(stmt) is not None


def get_for_job(
    session: Session, job_id: uuid.UUID, delivery_id: uuid.UUID, *, for_update: bool = False
) -> WebhookDelivery | None:
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.job_id == job_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def valid_secrets(session: Session, tenant_id: uuid.UUID, now: datetime) -> list[WebhookSecret]:
    """The tenant's secrets that have not expired, newest first."""
    stmt = (
        select(WebhookSecret)
        .where(
            WebhookSecret.tenant_id == tenant_id,
            or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
        )
        .order_by(WebhookSecret.created_at.desc(), WebhookSecret.id)
    )
    return list(session.scalars(stmt))


def all_secrets(session: Session, tenant_id: uuid.UUID) -> list[WebhookSecret]:
    stmt = (
        select(WebhookSecret)
        .where(WebhookSecret.tenant_id == tenant_id)
        .order_by(WebhookSecret.created_at.desc(), WebhookSecret.id)
    )
    return list(session.scalars(stmt))


def add_secret(session: Session, tenant_id: uuid.UUID, secret: str, now: datetime) -> WebhookSecret:
    row = WebhookSecret(id=uuid.uuid4(), tenant_id=tenant_id, secret=secret, created_at=now)
    session.add(row)
    session.flush()
    return row


def expire_secrets(
    session: Session, tenant_id: uuid.UUID, *, keep: uuid.UUID, at: datetime
) -> None:
    """Every other secret of the tenant that would outlive `at` ends at `at`."""
    session.execute(
        update(WebhookSecret)
        .where(
            WebhookSecret.tenant_id == tenant_id,
            WebhookSecret.id != keep,
            or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > at),
        )
        .values(expires_at=at)
        .execution_options(synchronize_session="fetch")
    )
