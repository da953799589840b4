"""The webhook payloads Scalpel sends (documented as OpenAPI `webhooks`).

A job sends the event types its submission listed in `webhook_events`: by default the
terminal ones (`job.succeeded`, `job.failed`, `job.canceled`); on request also `job.running`
(each time a worker starts the job: a retried job sends it again, with its attempt number)
and `job.pruning_step` (after each pruning step, with the step's sparsity, speedup and
primary dev metric). Every event is signed, retried and redelivered alike."""

from __future__ import annotations

import uuid
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from app.db.models import TERMINAL_WEBHOOK_EVENTS
from app.schemas.common import UtcDateTime

TerminalEventType = Literal["job.succeeded", "job.failed", "job.canceled"]
WebhookEventType = Literal[
    "job.succeeded", "job.failed", "job.canceled", "job.running", "job.pruning_step"
]
WEBHOOK_EVENT_TYPES: tuple[str, ...] = get_args(WebhookEventType)
TERMINAL_EVENT_TYPES: tuple[TerminalEventType, ...] = get_args(TerminalEventType)
assert TERMINAL_EVENT_TYPES == TERMINAL_WEBHOOK_EVENTS  # the job.webhook_events default

ARTIFACTS_URL_DOC = (
    "Where the job's artifacts are listed: absolute (`PUBLIC_BASE_URL` + "
    "`/v1/jobs/{id}/artifacts`) when the server sets PUBLIC_BASE_URL, else the path alone, "
    "relative to the API's base URL."
)


class WebhookJobData(BaseModel):
    """The job the event is about; more keys may be added (receivers must ignore them)."""

    model_config = ConfigDict(extra="allow")

    job_id: uuid.UUID = Field(
        description="The job's id.", examples=["0b7d3f8e-2a1c-4d5e-9f60-1a2b3c4d5e6f"]
    )
    status: Literal["succeeded", "failed", "canceled"] = Field(
        description="The job's final status (the event's type says the same).",
        examples=["succeeded"],
    )
    error_code: str | None = Field(
        default=None, description="Set when the job failed.", examples=["speedup_unreachable"]
    )
    error_message: str | None = Field(
        default=None,
        description="Set when the job failed: what went wrong, for people.",
        examples=["pruning.structured.target_speedup 20 is out of reach: ..."],
    )
    finished_at: UtcDateTime | None = Field(
        default=None, description="When the job ended.", examples=["2026-01-02T03:04:05.678Z"]
    )
    metrics: dict[str, Any] = Field(
        default_factory=dict,
        description="The job's top-level scalar metrics, and its task's `primary_metric` "
        "({name, value}) for each model (`dense_primary_metric`, `onnx_primary_metric`...).",
        examples=[{"task": "sequence_classification", "accuracy": 0.8532,
                   "primary_metric": {"name": "accuracy", "value": 0.8532}, "sparsity": 0.8}],
    )  # fmt: skip
    artifacts_url: str | None = Field(
        default=None,
        description=ARTIFACTS_URL_DOC,
        examples=["https://scalpel.example.com/v1/jobs/{id}/artifacts", "/v1/jobs/{id}/artifacts"],
    )


class WebhookEvent(BaseModel):
    """The JSON body of a terminal event's delivery, signed per Standard Webhooks."""

    type: TerminalEventType = Field(
        description="job.succeeded, job.failed or job.canceled.", examples=["job.succeeded"]
    )
    timestamp: UtcDateTime = Field(
        description="When the event was recorded: the same on every attempt (the "
        "webhook-timestamp header is the attempt's).",
        examples=["2026-01-02T03:04:05.678Z"],
    )
    data: WebhookJobData = Field(description="The job the event is about.")


class _RunningJobData(BaseModel):
    """What every event of a running job says of it; more keys may be added."""

    model_config = ConfigDict(extra="allow")

    job_id: uuid.UUID = Field(
        description="The job's id.", examples=["0b7d3f8e-2a1c-4d5e-9f60-1a2b3c4d5e6f"]
    )
    status: Literal["running"] = Field(description="Always running.", examples=["running"])


class WebhookRunningData(_RunningJobData):
    """The job a worker has just started; more keys may be added."""

    attempt: int = Field(
        description="1 for the first start; a retried job starts again.", examples=[1]
    )
    started_at: UtcDateTime = Field(
        description="When the worker started it, this attempt.",
        examples=["2026-01-02T03:04:05.678Z"],
    )


class WebhookRunningEvent(BaseModel):
    """`job.running`: sent when a worker starts the job (on request: `webhook_events`)."""

    type: Literal["job.running"] = Field(description="job.running.", examples=["job.running"])
    timestamp: UtcDateTime = Field(
        description="When the event was recorded.", examples=["2026-01-02T03:04:05.678Z"]
    )
    data: WebhookRunningData = Field(description="The job started.")


class WebhookPrimaryMetric(BaseModel):
    name: str = Field(
        description="The task's primary metric: accuracy, f1, pearson, ...",
        examples=["accuracy"],
    )
    value: float = Field(description="Its value on the dev examples scored.", examples=[0.8532])


class WebhookPruningStepData(_RunningJobData):
    """One pruning step of the running job; more keys may be added."""

    index: int = Field(
        description="The pruning step's number in the job: 1, 2, 3, ...", examples=[3]
    )
    step: int = Field(
        description="The training step it was taken at (0: before training).", examples=[500]
    )
    stage: str | None = Field(
        description="The stage it was taken in: prune or recover.", examples=["recover"]
    )
    sparsity: float | None = Field(
        description="The pruned fraction of the prunable weights.", examples=[0.8]
    )
    speedup: float | None = Field(
        default=None,
        description="Structured pruning: the measured speedup of the step's plan over the "
        "dense model (its compacted ONNX graph, on the worker); None for the other methods.",
        examples=[1.8, None],
    )
    primary_metric: WebhookPrimaryMetric | None = Field(
        default=None,
        description="The dev primary metric right after the step (on at most 512 examples).",
    )


class WebhookPruningStepEvent(BaseModel):
    """`job.pruning_step`: sent after each pruning step (on request: `webhook_events`)."""

    type: Literal["job.pruning_step"] = Field(
        description="job.pruning_step.", examples=["job.pruning_step"]
    )
    timestamp: UtcDateTime = Field(
        description="When the event was recorded.", examples=["2026-01-02T03:04:05.678Z"]
    )
    data: WebhookPruningStepData = Field(description="The pruning step.")
