"""A job's webhook, and webhook delivery log and secret responses."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.db.models import (
    TERMINAL_WEBHOOK_EVENTS,
    Job,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSecret,
)
from app.schemas.common import UtcDateTime


class JobWebhook(BaseModel):
    """Where the job's webhook events go, and which."""

    url: str = Field(
        description="The submission's webhook_url.", examples=["https://hooks.example.com/scalpel"]
    )
    events: list[str] = Field(
        description="The event types sent (the submission's webhook_events).",
        examples=[["job.succeeded", "job.failed", "job.canceled"]],
    )
    notice: str | None = Field(
        default=None,
        description="Only in the submission's response: set when the tenant has no signing "
        "secret yet (POST /v1/webhook-secrets makes one, shown once). The job is accepted "
        "either way; its deliveries are signed with the tenant's secrets.",
        examples=[None],
    )

    @classmethod
    def of(cls, job: Job) -> JobWebhook | None:
        if not job.webhook_url:
            return None
        events = job.webhook_events if job.webhook_events is not None else TERMINAL_WEBHOOK_EVENTS
        return cls(url=job.webhook_url, events=list(events))


TIME_EXAMPLE = "2026-01-02T03:04:05.678Z"


class WebhookAttemptOut(BaseModel):
    attempted_at: UtcDateTime = Field(
        description="When the attempt was made.", examples=[TIME_EXAMPLE]
    )
    status_code: int | None = Field(
        description="The receiver's HTTP status; None: no answer.", examples=[503]
    )
    error: str | None = Field(
        description="Why the attempt failed (a non-2xx status, a timeout, a refused address); "
        "null when it succeeded.",
        examples=["HTTP 503"],
    )
    duration_ms: float = Field(
        description="From sending the request to the answer (or the failure), in ms.",
        examples=[182.4],
    )

    @classmethod
    def of(cls, a: WebhookAttempt) -> WebhookAttemptOut:
        return cls(
            attempted_at=a.attempted_at, status_code=a.status_code, error=a.error,
            duration_ms=a.duration_ms,
        )  # fmt: skip


class WebhookDeliveryOut(BaseModel):
    id: uuid.UUID = Field(
        description="The delivery's id (for redeliver).",
        examples=["6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a"],
    )
    job_id: uuid.UUID = Field(
        description="The job the event is about.", examples=["0b7d3f8e-2a1c-4d5e-9f60-1a2b3c4d5e6f"]
    )
    event_type: str = Field(
        description="The event's type (the payload's `type`).", examples=["job.succeeded"]
    )
    msg_id: str = Field(
        description="The webhook-id header: the same on every attempt.",
        examples=["msg_6d5c4b3a2f1e4d0c9b8a7f6e5d4c3b2a"],
    )
    url: str = Field(
        description="Where it is sent: the job's webhook_url.",
        examples=["https://hooks.example.com/scalpel"],
    )
    status: Literal["pending", "succeeded", "failed"] = Field(
        description="pending: not yet delivered (an attempt is due at next_attempt_at); "
        "succeeded: a 2xx answer; failed: given up (WEBHOOK_MAX_ATTEMPTS attempts, or "
        "WEBHOOK_MAX_AGE_S after the event).",
        examples=["pending"],
    )
    attempts: int = Field(description="Attempts made so far.", examples=[2])
    next_attempt_at: UtcDateTime | None = Field(
        description="When the next attempt is due (backoff after a failure); null once "
        "succeeded or failed.",
        examples=[TIME_EXAMPLE],
    )
    last_status_code: int | None = Field(
        description="The last attempt's HTTP status; null: none yet, or no answer.",
        examples=[503],
    )
    last_error: str | None = Field(
        description="The last attempt's error; null: none.", examples=["HTTP 503"]
    )
    created_at: UtcDateTime = Field(
        description="When the event was recorded (as the job changed).", examples=[TIME_EXAMPLE]
    )
    updated_at: UtcDateTime = Field(
        description="When the delivery last changed.", examples=[TIME_EXAMPLE]
    )
    payload: dict[str, Any] = Field(
        description="The JSON body sent: the event (see the document's `webhooks`).",
        examples=[{"type": "job.succeeded", "timestamp": TIME_EXAMPLE,
                   "data": {"job_id": "0b7d3f8e-2a1c-4d5e-9f60-1a2b3c4d5e6f",
                            "status": "succeeded"}}],
    )  # fmt: skip
    attempt_log: list[WebhookAttemptOut] = Field(description="Every attempt, oldest first.")

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
    items: list[WebhookDeliveryOut] = Field(description="The job's deliveries, oldest first.")


class WebhookSecretOut(BaseModel):
    """A secret's metadata; the secret itself is only shown when it is created."""

    id: uuid.UUID = Field(
        description="The secret's id.", examples=["1e2d3c4b-5a69-4788-97a6-b5c4d3e2f1a0"]
    )
    created_at: UtcDateTime = Field(description="When it was made.", examples=[TIME_EXAMPLE])
    expires_at: UtcDateTime | None = Field(
        description="When it stops signing (a newer secret's grace period); null: valid.",
        examples=[None],
    )
    fingerprint: str = Field(
        description="sha256 of the secret, first 12 hex digits.", examples=["3f2a9c1b7d4e"]
    )

    @classmethod
    def of(cls, s: WebhookSecret) -> WebhookSecretOut:
        digest = hashlib.sha256(s.secret.encode()).hexdigest()[:12]
        return cls(id=s.id, created_at=s.created_at, expires_at=s.expires_at, fingerprint=digest)


class WebhookSecretList(BaseModel):
    items: list[WebhookSecretOut] = Field(description="The tenant's secrets, valid and expired.")


class WebhookSecretCreated(WebhookSecretOut):
    secret: str = Field(
        description="whsec_...: shown once; verify deliveries with it.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    previous_expire_at: UtcDateTime | None = Field(
        description="When the secrets valid before this one stop signing (None: there were none).",
        examples=[TIME_EXAMPLE],
    )
