"""The webhook payloads Scalpel sends when a job ends (documented as OpenAPI `webhooks`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WebhookEventType = Literal["job.succeeded", "job.failed", "job.canceled"]


class WebhookJobData(BaseModel):
    """The job the event is about; more keys may be added (receivers must ignore them)."""

    model_config = ConfigDict(extra="allow")

    job_id: uuid.UUID
    status: Literal["succeeded", "failed", "canceled"]
    error_code: str | None = Field(default=None, description="Set when the job failed.")
    error_message: str | None = None
    finished_at: datetime | None = None
    metrics: dict[str, Any] = Field(
        default_factory=dict,
        description="The job's top-level scalar metrics, and its task's `primary_metric` "
        "({name, value}) for each model (`dense_primary_metric`, `onnx_primary_metric`...).",
    )
    artifacts_url: str | None = Field(default=None, examples=["/v1/jobs/{id}/artifacts"])


class WebhookEvent(BaseModel):
    """The JSON body of a delivery, signed per Standard Webhooks."""

    type: WebhookEventType
    timestamp: datetime
    data: WebhookJobData
