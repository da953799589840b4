"""Webhook secrets (the first one, rotation with a grace period) and a job's delivery log and
redelivery.

A tenant's first secret is made with its first API key (`python -m app create-api-key`,
which shows it once) or by POST /v1/webhook-secrets (shown once too). A tenant that has none
(made before, or otherwise) still gets its webhooks: the first delivery makes a secret to
sign them with, which nobody has seen, so a submission with a webhook_url says so
(`signing_notice`) and POST /v1/webhook-secrets gives one to verify with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import WebhookDelivery, WebhookSecret
from app.errors import NotFound
from app.repositories import webhooks as webhooks_repo
from app.services import jobs as jobs_service
from app.settings import Settings
from app.tenancy import Caller
from app.webhooks.signing import new_secret

NO_SECRET_NOTICE = (
    "no signing secret: POST /v1/webhook-secrets to make one (shown once) and verify this "
    "job's deliveries with it"
)


def first_secret(
    session: Session, tenant_id: uuid.UUID, now: datetime | None = None
) -> WebhookSecret | None:
    """A secret for a tenant that has no valid one (None when it has): the caller shows it,
    once."""
    now = now or utcnow()
    if webhooks_repo.valid_secrets(session, tenant_id, now):
        return None
    return webhooks_repo.add_secret(session, tenant_id, new_secret(), now)


def signing_notice(
    session: Session, tenant_id: uuid.UUID, now: datetime | None = None
) -> str | None:
    """What a submission with a webhook_url tells a tenant without a valid secret."""
    return (
        None
        if webhooks_repo.valid_secrets(session, tenant_id, now or utcnow())
        else NO_SECRET_NOTICE
    )


def ensure_secrets(session: Session, tenant_id: uuid.UUID, now: datetime) -> list[WebhookSecret]:
    """The tenant's valid secrets, newest first; one is made when it has none."""
    valid = webhooks_repo.valid_secrets(session, tenant_id, now)
    if not valid:
        valid = [webhooks_repo.add_secret(session, tenant_id, new_secret(), now)]
    return valid


@dataclass(frozen=True)
class Rotated:
    secret: WebhookSecret
    previous_expire_at: datetime | None  # None: there was no valid secret before


def rotate_secret(
    session: Session, settings: Settings, caller: Caller, now: datetime | None = None
) -> Rotated:
    """A new secret for the caller's tenant; the ones valid now stay valid for the grace."""
    now = now or utcnow()
    had = webhooks_repo.valid_secrets(session, caller.tenant_id, now)
    row = webhooks_repo.add_secret(session, caller.tenant_id, new_secret(), now)
    until = now + timedelta(seconds=settings.webhook_secret_grace_s)
    webhooks_repo.expire_secrets(session, caller.tenant_id, keep=row.id, at=until)
    session.flush()
    return Rotated(row, until if had else None)


def list_secrets(session: Session, caller: Caller) -> list[WebhookSecret]:
    return webhooks_repo.all_secrets(session, caller.tenant_id)


def deliveries(session: Session, raw_job_id: str, caller: Caller) -> list[WebhookDelivery]:
    """The job's deliveries with their attempts (another tenant's job is not found)."""
    job = jobs_service.get(session, raw_job_id, caller)
    return webhooks_repo.for_job(session, job.id)


def redeliver(
    session: Session, raw_job_id: str, raw_delivery_id: str, caller: Caller,
    now: datetime | None = None,
) -> WebhookDelivery:  # fmt: skip
    """Send the message again as soon as a dispatcher passes (same webhook-id). After one
    more failed attempt it is retried only while within webhook_max_attempts and max age."""
    job = jobs_service.get(session, raw_job_id, caller)
    delivery_id = jobs_service.parse_id(raw_delivery_id)
    delivery = (
        webhooks_repo.get_for_job(session, job.id, delivery_id, for_update=True)
        if delivery_id
        else None
    )
    if delivery is None:
        raise NotFound(f"no webhook delivery {raw_delivery_id!r}", code="delivery_not_found")
    when = now or utcnow()
    delivery.status = "pending"
    delivery.next_attempt_at = when
    delivery.updated_at = when
    session.flush()
    return delivery
