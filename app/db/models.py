"""The job registry: jobs, their progress history, artifacts, uploaded models and data sets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, utcnow

JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements INTEGER PRIMARY KEY.
BigIntPk = BigInteger().with_variant(Integer(), "sqlite")

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
# The webhook events a job sends when its submission names none (app.schemas.webhook_events).
TERMINAL_WEBHOOK_EVENTS = ("job.succeeded", "job.failed", "job.canceled")


class Tenant(Base):
    __tablename__ = "tenant"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """Only the sha256 of the secret is stored; the key itself is shown once."""

    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    hash: Mapped[str] = mapped_column(String(64))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(Base):
    """The first response to a request made with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(1024))
    request_sha256: Mapped[str] = mapped_column(String(64))
    # NULL only inside the transaction that claimed the key and is running the request.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')", name="status"
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        Index("ix_job_created_at_id", "created_at", "id"),
        Index("ix_job_status_created_at", "status", "created_at"),
        Index("ix_job_status_heartbeat_at", "status", "heartbeat_at"),
        # The list filters (GET /v1/jobs?label=, ?model=, ?dataset=) and the in-use check of
        # a model or data set deletion (migration 0009): GIN on PostgreSQL (a plain index on
        # SQLite); the spec expressions on PostgreSQL only.
        Index(
            "ix_job_labels", "labels", postgresql_using="gin",
            postgresql_ops={"labels": "jsonb_path_ops"},
        ),
        Index("ix_job_spec_model", text("(spec ->> 'model')")).ddl_if(dialect="postgresql"),
        Index(
            "ix_job_spec_dataset", text("((spec -> 'dataset') ->> 'name')")
        ).ddl_if(dialect="postgresql"),
    )  # fmt: skip

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # With a cancel of a running job: keep the artifacts it registered before it stopped.
    keep_partial_artifacts: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    # The event types sent to webhook_url (migration 0010; the terminal ones by default).
    webhook_events: Mapped[list[str]] = mapped_column(
        JsonType, default=lambda: list(TERMINAL_WEBHOOK_EVENTS),
        server_default='["job.succeeded", "job.failed", "job.canceled"]',
    )  # fmt: skip
    # The caller's own name and labels for the job (app.schemas.jobs: JobSubmission). Labels
    # are JSONB beside the row, not a side table: every job response carries them (the status
    # read included) without a join, and `labels @> '{"k": "v", ...}'` matches any number of
    # label filters with one GIN index lookup.
    name: Mapped[str | None] = mapped_column(String(255))
    labels: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict, server_default="{}")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Written by the running worker every heartbeat_interval_s; a stale one means a lost worker.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobEvent.seq"
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="Artifact.created_at"
    )


class JobEvent(Base):
    """One entry of a job's history. `seq` numbers a job's events 1, 2, 3, ... (the API's
    event id, SSE `id:` and `Last-Event-ID`); `id` is the table's internal key, one sequence
    across every tenant, never shown."""

    __tablename__ = "job_event"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # status | stage | progress | metrics
    status: Mapped[str | None] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JsonType)

    job: Mapped[Job] = relationship(back_populates="events")


class JobEventSeq(Base):
    """The last event number handed out to a job (job_event.seq). A row of its own, so that
    numbering an event neither writes the job's row (its updated_at, its change trigger) nor
    races: see app.repositories.events, which numbers every event inserted."""

    __tablename__ = "job_event_seq"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("job.id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger)


class Artifact(Base):
    __tablename__ = "artifact"
    __table_args__ = (UniqueConstraint("job_id", "kind"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # model | model_int8 | report
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set when artifact_retention_days removed the file (app.services.retention): the row
    # stays, so the job's listing says so and a download is a 410, not a missing file.
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    job: Mapped[Job] = relationship(back_populates="artifacts")


class UploadedModel(Base):
    __tablename__ = "model"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    archive_format: Mapped[str] = mapped_column(String(16))  # zip | tar.gz
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    architecture: Mapped[str] = mapped_column(String(64))
    num_labels: Mapped[int | None] = mapped_column(Integer)
    num_parameters: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UploadedDataset(Base):
    """An uploaded data set and what its checks found. Per task (app.catalog.TASKS):

    - sequence_classification: a table; `labels` the class names of `label_column`.
    - regression: a table; `label_column` the score column, `labels` [], `options`
      {"score_min", "score_max"} (the lowest and highest score, for dataset.score_range).
    - token_classification: CoNLL or tagged JSONL; `columns` and `text_columns` [],
      `labels` the IOB2 tags (app.services.conll_format.tag_names), `label_column` the tag
      field (JSONL) or the tag column's 1-based number (CoNLL), `options` {"tag_scheme":
      "IOB1" | "IOB2"} (the file's scheme, as given or detected at upload).
    - question_answering: SQuAD JSON or JSONL; `columns`, `text_columns` and `labels` [],
      `label_column` "answers".

    `num_rows` counts examples: rows, sentences or questions."""

    __tablename__ = "dataset"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    task: Mapped[str] = mapped_column(
        String(32), default="sequence_classification", server_default="sequence_classification"
    )
    name: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))  # csv | tsv | jsonl | conll | squad
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    columns: Mapped[list[str]] = mapped_column(JsonType)
    text_columns: Mapped[list[str]] = mapped_column(JsonType)
    label_column: Mapped[str] = mapped_column(String(255))
    labels: Mapped[list[str]] = mapped_column(JsonType)
    num_rows: Mapped[int] = mapped_column(Integer)
    # What one task's checks found that the job needs again (see the class docstring).
    options: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookSecret(Base):
    """A tenant's signing secret; during a rotation the old one stays valid until expires_at."""

    __tablename__ = "webhook_secret"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), index=True
    )
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One webhook message (the outbox row), written with the job's terminal state."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        Index("ix_webhook_delivery_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(32))
    msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    attempt_log: Mapped[list[WebhookAttempt]] = relationship(
        cascade="all, delete-orphan", order_by="WebhookAttempt.id"
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)
