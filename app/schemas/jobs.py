"""Job responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.db.models import Job, JobEvent

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]


class JobError(BaseModel):
    code: str
    message: str


class JobLinks(BaseModel):
    self: str
    artifacts: str
    events: str


class JobOut(BaseModel):
    id: uuid.UUID
    status: JobStatus
    stage: str | None
    progress: float
    cancel_requested: bool
    spec: dict[str, Any]
    metrics: dict[str, Any]
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    links: JobLinks

    @classmethod
    def of(cls, job: Job) -> JobOut:
        base = f"/v1/jobs/{job.id}"
        error = None
        if job.error_code is not None:
            error = JobError(code=job.error_code, message=job.error_message or "")
        return cls(
            id=job.id, status=job.status, stage=job.stage, progress=job.progress,  # type: ignore[arg-type]
            cancel_requested=job.cancel_requested, spec=job.spec, metrics=job.metrics or {},
            error=error, created_at=job.created_at, started_at=job.started_at,
            finished_at=job.finished_at, updated_at=job.updated_at,
            links=JobLinks(self=base, artifacts=f"{base}/artifacts", events=f"{base}/events"),
        )  # fmt: skip


class JobPage(BaseModel):
    items: list[JobOut]
    next_page_token: str | None


class JobEventOut(BaseModel):
    id: int = Field(description="The event's number within its job: 1, 2, 3, ...")
    kind: str
    status: str | None
    stage: str | None
    progress: float | None
    message: str | None
    data: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, e: JobEvent) -> JobEventOut:
        return cls(
            id=e.seq, kind=e.kind, status=e.status, stage=e.stage, progress=e.progress,
            message=e.message, data=e.data, created_at=e.created_at,
        )  # fmt: skip


class JobEventPage(BaseModel):
    items: list[JobEventOut]
    next_after: int | None
