"""Job and job_event queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    delete,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import TERMINAL_STATUSES, Job, JobEvent
from app.pagination import Cursor
from app.repositories import events as _events  # noqa: F401  (numbers every JobEvent)
from app.repositories.keyset import page

# Built once: the status read is the API's hottest query, and building a statement costs more
# Python than compiling it (SQLAlchemy caches the compiled form either way).
_BY_ID = select(Job).where(Job.id == bindparam("job_id"))
_BY_ID_IN_TENANT = _BY_ID.where(Job.tenant_id == bindparam("tenant_id"))


def create_queued(
    session: Session, tenant_id: uuid.UUID, spec: dict[str, Any], webhook_url: str | None, *,
    name: str | None = None, labels: dict[str, str] | None = None,
    webhook_events: Sequence[str] | None = None,
) -> Job:  # fmt: skip
    """webhook_events None: the column's default (the terminal events)."""
    job = Job(
        id=uuid.uuid4(), tenant_id=tenant_id, status="queued", progress=0.0, spec=spec, metrics={},
        webhook_url=webhook_url, cancel_requested=False, attempts=0, name=name,
        labels=dict(labels or {}),
    )  # fmt: skip
    if webhook_events is not None:
        job.webhook_events = list(webhook_events)
    session.add(job)
    session.flush()
    add_event(session, job.id, kind="status", status="queued")
    return job


def add_event(
    session: Session, job_id: uuid.UUID, *, kind: str, status: str | None = None,
    message: str | None = None,
) -> JobEvent:  # fmt: skip
    event = JobEvent(job_id=job_id, kind=kind, status=status, message=message)
    session.add(event)
    session.flush()
    return event


def get(
    session: Session, job_id: uuid.UUID, *, tenant_id: uuid.UUID | None, for_update: bool = False
) -> Job | None:
    """tenant_id None: any tenant's job (admin)."""
    stmt = _BY_ID if tenant_id is None else _BY_ID_IN_TENANT
    if for_update:
        stmt = stmt.with_for_update()
    params = {"job_id": job_id, "tenant_id": tenant_id}
    return session.scalars(stmt, params).one_or_none()


@dataclass(frozen=True)
class JobFilter:
    """What GET /v1/jobs narrows the list to; every given part must match."""

    statuses: Sequence[str] = ()
    model: str | None = None  # spec.model
    dataset: str | None = None  # spec.dataset.name
    recipe: str | None = None  # `name` (any version) or `name@version`
    labels: dict[str, str] = field(default_factory=dict)
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _spec_text(session: Session, *path: str) -> ColumnElement[str]:
    """The spec's string at `path`. On PostgreSQL `spec -> 'a' ->> 'b'` with the keys
    written out, so that the expression indexes of migration 0009 match it."""
    if not _postgres(session):
        return func.json_extract(Job.spec, "$." + ".".join(path))
    expr: ColumnElement[Any] = Job.spec.expression
    for key in path[:-1]:
        expr = expr.op("->")(literal_column(f"'{key}'"))
    return expr.op("->>", return_type=String)(literal_column(f"'{path[-1]}'"))


def _utc(when: datetime) -> datetime:
    """The instant in UTC (naive: taken as UTC). SQLite stores times as naive UTC text and
    compares them as text, so a bound in another offset would compare its wall clock."""
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _filters(session: Session, f: JobFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.statuses:
        where.append(Job.status.in_(list(f.statuses)))
    if f.model is not None:
        where.append(_spec_text(session, "model") == f.model)
    if f.dataset is not None:
        where.append(_spec_text(session, "dataset", "name") == f.dataset)
    if f.recipe is not None:
        recipe = _spec_text(session, "recipe")
        where.append(
            recipe == f.recipe
            if "@" in f.recipe
            else or_(recipe == f.recipe, recipe.startswith(f"{f.recipe}@", autoescape=True))
        )
    if f.labels and _postgres(session):
        where.append(type_coerce(Job.labels, JSONB).contains(f.labels))  # the GIN index
    elif f.labels:
        where.extend(
            func.json_extract(Job.labels, f'$."{key}"') == value for key, value in f.labels.items()
        )
    if f.created_after is not None:
        where.append(Job.created_at >= _utc(f.created_after))
    if f.created_before is not None:
        where.append(Job.created_at < _utc(f.created_before))
    return where


def list_page(
    session: Session, *, tenant_id: uuid.UUID | None, cursor: Cursor | None, limit: int,
    where: JobFilter | None = None,
) -> tuple[list[Job], Cursor | None]:  # fmt: skip
    stmt = select(Job)
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    if where is not None:
        stmt = stmt.where(*_filters(session, where))
    return page(session, stmt, Job, cursor, limit)


def active_using(
    session: Session, *, model: str | None = None, dataset: str | None = None, limit: int = 5
) -> list[Job]:
    """Jobs not yet finished (queued or running) whose spec names this model or data set
    (any tenant's: an id is a tenant's own, and a job can name only its tenant's), oldest
    first."""
    stmt = select(Job).where(Job.status.not_in(sorted(TERMINAL_STATUSES)))
    if model is not None:
        stmt = stmt.where(_spec_text(session, "model") == model)
    if dataset is not None:
        stmt = stmt.where(_spec_text(session, "dataset", "name") == dataset)
    stmt = stmt.order_by(Job.created_at, Job.id).limit(limit)
    return list(session.scalars(stmt))


def delete_job(session: Session, job_id: uuid.UUID) -> None:
    """The job's row; its events, artifacts and webhook deliveries go with it (ON DELETE
    CASCADE)."""
    session.execute(delete(Job).where(Job.id == job_id))


def events_after(
    session: Session, job_id: uuid.UUID, after: int | None, limit: int
) -> list[JobEvent]:
    """The job's events numbered after `after` (its own sequence, JobEvent.seq), in order."""
    stmt = select(JobEvent).where(JobEvent.job_id == job_id)
    if after is not None:
        stmt = stmt.where(JobEvent.seq > after)
    return list(session.scalars(stmt.order_by(JobEvent.seq).limit(limit)))


def mark_dispatched(session: Session, job_id: uuid.UUID, when: datetime | None = None) -> None:
    """Only the dispatched_at column: the worker may already be updating the row."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.dispatched_at.is_(None))
        .values(dispatched_at=when or utcnow())
        .execution_options(synchronize_session="fetch")
    )


def cancel_queued(session: Session, job: Job) -> None:
    now = utcnow()
    job.status = "canceled"
    job.finished_at = now
    job.cancel_requested = True
    add_event(session, job.id, kind="status", status="canceled", message="canceled by request")


def request_cancel(session: Session, job: Job, *, keep_partial_artifacts: bool = False) -> None:
    """The worker stops at its next step; a repeated request may still ask to keep what the
    job registered so far."""
    if keep_partial_artifacts:
        job.keep_partial_artifacts = True
    if not job.cancel_requested:
        job.cancel_requested = True
        message = "cancel requested" + (
            " (keeping partial artifacts)" if job.keep_partial_artifacts else ""
        )
        add_event(session, job.id, kind="status", status=job.status, message=message)
