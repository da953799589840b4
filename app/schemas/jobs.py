"""Job responses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_serializer

from app.db.models import Job, JobEvent
from app.schemas.common import UtcDateTime
from app.schemas.job_metrics import JobMetrics
from app.schemas.webhooks import JobWebhook

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]

# A job event's `kind`, which is also its SSE `event:` name.
EVENT_KINDS = ("status", "stage", "progress", "metrics", "telemetry")
# A telemetry event's data (worker.pipelines.telemetry writes it).
TELEMETRY_FIELDS = {
    "step": "the stage's optimizer steps done",
    "total_steps": "the stage's optimizer steps planned",
    "loss": "the mean training loss of the steps since the stage's last telemetry event "
    "(null if none was finite)",
    "loss_steps": "how many steps that mean covers",
    "learning_rate": "the learning rate of the last step",
    "steps_per_s": "optimizer steps per second since the last telemetry event",
    "examples_per_s": "training examples per second since the last telemetry event",
    "stage_steps_per_s": "optimizer steps per second of the stage's training this attempt (a "
    "stage that trains in segments, method structured's recoveries: of their time, not the "
    "time between them; what the job's eta_at is estimated from; null until two steps have "
    "been timed)",
    "elapsed_s": "seconds since the stage began",
    "remaining_steps": "the optimizer steps left in this stage and in the training stages "
    "planned after it",
}
EVENT_KIND_DOC = (
    "One of " + ", ".join(EVENT_KINDS) + "; also the event's SSE `event:` name. `telemetry`: "
    "a training stage's measurements (finetune_dense, recover, qat), written at most once "
    "every 50 optimizer steps and once every 10 s, at most 201 times per training stage "
    "and attempt (a long stage's events are further apart), and at the stage's last step; "
    "its `data`: " + "; ".join(f"`{k}`: {v}" for k, v in TELEMETRY_FIELDS.items()) + "."
)
ETA_AT_DOC = (
    "When the job's training should be done: the optimizer steps left in the current "
    "training stage and in the training stages planned after it (finetune_dense, recover, "
    "qat), at the steps per second the latest telemetry event measured in the current stage "
    "(later stages are assumed to train as fast). It does not cover the stages that do not "
    "train (evaluation, measurement, export, packaging): the job ends some time after it. "
    "Null when the job is not running, before the first measurement of this attempt, once no "
    "training is left, and in the answers of submit and cancel."
)
ETA_SECONDS_DOC = "Seconds from this response to eta_at (0 once it has passed); null with it."


def seconds_until(when: datetime | None, now: datetime | None = None) -> float | None:
    if when is None:
        return None
    left = (when - (now or datetime.now(UTC))).total_seconds()
    return round(max(0.0, left), 1)


JOB_ID_EXAMPLE = "0b7d3f8e-2a1c-4d5e-9f60-1a2b3c4d5e6f"
TIME_EXAMPLE = "2026-01-02T03:04:05.678Z"
STAGES = (
    "load, finetune_dense, evaluate_dense, drop_layers, prune, recover, quantize, qat, "
    "evaluate, measure, export, package (those the job's spec needs, in this order)"
)


class JobError(BaseModel):
    code: str = Field(
        description="A stable machine-readable code: invalid_spec, internal_error, "
        "speedup_unreachable, ...",
        examples=["speedup_unreachable"],
    )
    message: str = Field(
        description="What went wrong, for people.",
        examples=[
            "pruning.structured.target_speedup 20 is out of reach: the best reachable "
            "speedup of this model is 6.1x (...); lower pruning.structured.target_speedup"
        ],
    )


class JobLinks(BaseModel):
    self: str = Field(description="The job.", examples=[f"/v1/jobs/{JOB_ID_EXAMPLE}"])
    artifacts: str = Field(
        description="Its artifacts.", examples=[f"/v1/jobs/{JOB_ID_EXAMPLE}/artifacts"]
    )
    events: str = Field(
        description="Its events (JSON pages, or a Server-Sent Events stream).",
        examples=[f"/v1/jobs/{JOB_ID_EXAMPLE}/events"],
    )


class JobOut(BaseModel):
    id: uuid.UUID = Field(description="The job's id.", examples=[JOB_ID_EXAMPLE])
    name: str | None = Field(
        default=None, description="The name given at submission.", examples=["sst2-obert-80"]
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="The labels given at submission.",
        examples=[{"team": "search"}],
    )
    status: JobStatus = Field(
        description="queued, then running; it ends succeeded, failed or canceled.",
        examples=["running"],
    )
    stage: str | None = Field(
        description=f"The stage running or last run: {STAGES}; null before the first.",
        examples=["recover"],
    )
    progress: float = Field(
        description="From 0 to 1: the stages done, weighted by their usual length.",
        examples=[0.42],
    )
    cancel_requested: bool = Field(
        description="A cancel was asked for (a running job stops at its next step).",
        examples=[False],
    )
    spec: dict[str, Any] = Field(
        description="The job spec as it runs: defaults filled in, a recipe merged and pinned "
        "to name@version.",
        examples=[{"model": "minilm-l6", "dataset": {"name": "sst2"}, "recipe": "obert-80@2"}],
    )
    metrics: JobMetrics = Field(
        description="The job's headline numbers, written as its stages finish; report.json "
        "(an artifact) holds the rest."
    )
    error: JobError | None = Field(description="Why the job failed; null unless it failed.")
    created_at: UtcDateTime = Field(description="When it was submitted.", examples=[TIME_EXAMPLE])
    started_at: UtcDateTime | None = Field(
        description="When a worker last started it; null while it has not started.",
        examples=[TIME_EXAMPLE],
    )
    finished_at: UtcDateTime | None = Field(
        description="When it ended; null while queued or running.", examples=[None]
    )
    updated_at: UtcDateTime = Field(
        description="When its row last changed (status, stage, progress or metrics).",
        examples=[TIME_EXAMPLE],
    )
    links: JobLinks = Field(description="Where its artifacts and events are.")
    webhook: JobWebhook | None = Field(default=None, description="None: no webhook_url.")
    eta_seconds: float | None = Field(default=None, description=ETA_SECONDS_DOC, examples=[754.2])
    eta_at: UtcDateTime | None = Field(
        default=None, description=ETA_AT_DOC, examples=[TIME_EXAMPLE]
    )

    @field_serializer("eta_seconds")
    def _eta_seconds_now(self, value: float | None) -> float | None:
        """Counted at serialisation, so a cached status read still tells the time left."""
        return seconds_until(self.eta_at)

    @classmethod
    def of(cls, job: Job, *, eta_at: datetime | None = None) -> JobOut:
        """`eta_at`: app.services.job_eta's estimate (the reads of a running job set it)."""
        base = f"/v1/jobs/{job.id}"
        error = None
        if job.error_code is not None:
            error = JobError(code=job.error_code, message=job.error_message or "")
        return cls(
            id=job.id, name=job.name, labels=job.labels or {},
            status=job.status, stage=job.stage, progress=job.progress,  # type: ignore[arg-type]
            cancel_requested=job.cancel_requested, spec=job.spec,
            metrics=JobMetrics.of(job.metrics, job=job.id),
            error=error, created_at=job.created_at, started_at=job.started_at,
            finished_at=job.finished_at, updated_at=job.updated_at,
            links=JobLinks(self=base, artifacts=f"{base}/artifacts", events=f"{base}/events"),
            webhook=JobWebhook.of(job), eta_seconds=seconds_until(eta_at), eta_at=eta_at,
        )  # fmt: skip


class JobPage(BaseModel):
    items: list[JobOut] = Field(description="The jobs, newest first.")
    next_page_token: str | None = Field(
        description="The next page's page_token (give the same filters); null on the last page.",
        examples=[None],
    )


class JobEventOut(BaseModel):
    id: int = Field(description="The event's number within its job: 1, 2, 3, ...", examples=[7])
    kind: str = Field(description=EVENT_KIND_DOC, examples=["metrics"])
    status: str | None = Field(
        description="status events: the job's new status.", examples=["succeeded"]
    )
    stage: str | None = Field(
        description="The stage the event belongs to (stage events: the one starting).",
        examples=["recover"],
    )
    progress: float | None = Field(
        description="stage and progress events: the job's progress, 0 to 1.", examples=[0.42]
    )
    message: str | None = Field(
        description="status events: why (a failure's message, a cancel's reason).",
        examples=["canceled during stage recover"],
    )
    data: dict[str, Any] | None = Field(
        description="metrics events: the values written (the job's metrics keys, or a pruning "
        "step's); telemetry events: the measurements; status events of a failure: its "
        "`code`.",
        examples=[{"dense_primary_metric": {"name": "accuracy", "value": 0.8612}}],
    )
    created_at: UtcDateTime = Field(description="When it was written.", examples=[TIME_EXAMPLE])

    @classmethod
    def of(cls, e: JobEvent) -> JobEventOut:
        return cls(
            id=e.seq, kind=e.kind, status=e.status, stage=e.stage, progress=e.progress,
            message=e.message, data=e.data, created_at=e.created_at,
        )  # fmt: skip


class JobEventPage(BaseModel):
    items: list[JobEventOut] = Field(description="The job's events after `after`, oldest first.")
    next_after: int | None = Field(
        description="The next page's `after`; null when this page reached the job's last event.",
        examples=[57],
    )
