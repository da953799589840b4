"""Webhook delivery log and secret responses."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.db.models import WebhookAttempt, WebhookDelivery, WebhookSecret


class WebhookAttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; None: no answer.")
    error: str | None
    duration_ms: float

    @classmethod
    def of(cls, a: WebhookAttempt) -> WebhookAttemptOut:
        return cls(
            attempted_at=a.attempted_at, status_code=a.status_code, error=a.error,
            duration_ms=a.duration_ms,
        )  # fmt: skip


class WebhookDeliveryOut(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID
    event_type: str
    msg_id: str = Field(description="The webhook-id header: the same on every attempt.")
    url: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    payload: dict[str, Any]
    attempt_log: list[WebhookAttemptOut]

    @classmethod
    def of(cls, d: WebhookDelivery) -> WebhookDeliveryOut:
        return cls(
            id=d.id, job_id=d.job_id, event_type=d.event_type, msg_id=d.msg_id, url=d.url,
            status=d.status, attempts=d.attempts, next_attempt_at=d.next_attempt_at,  # type: ignore[arg-type]
            last_status_code=d.last_status_code, last_error=d.last_error,
            created_at=d.created_at, updated_at=d.updated_at, payload=d.payload,
            attempt_log=[WebhookAttemptOut.of(a) for a in d.attempt_log],
        )  # fmt: skip


class WebhookDeliveryList(BaseModel):
    items: list[WebhookDeliveryOut]


class WebhookSecretOut(BaseModel):
    """A secret's metadata; the secret itself is only shown when it is created."""

    id: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    fingerprint: str = Field(description="sha256 of the secret, first 12 hex digits.")

    @classmethod
    def of(cls, s: WebhookSecret) -> WebhookSecretOut:
        digest = hashlib.sha256(s.secret.encode()).hexdigest()[:12]
        return cls(id=s.id, created_at=s.created_at, expires_at=s.expires_at, fingerprint=digest)


class WebhookSecretList(BaseModel):
    items: list[WebhookSecretOut]


class WebhookSecretCreated(WebhookSecretOut):
    secret: str = Field(description="whsec_...: shown once; verify deliveries with it.")
    previous_expire_at: datetime | None = Field(
        description="When the secrets valid before this one stop signing (None: there were none)."
    )
