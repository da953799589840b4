"""Job and job_event queries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job, JobEvent
from app.pagination import Cursor
from app.repositories import events as _events  # noqa: F401  (numbers every JobEvent)
from app.repositories.keyset import page

# Built once: the status read is the API's hottest query, and building a statement costs more
# Python than compiling it (SQLAlchemy caches the compiled form either way).
_BY_ID = select(Job).where(Job.id == bindparam("job_id"))
_BY_ID_IN_TENANT = _BY_ID.where(Job.tenant_id == bindparam("tenant_id"))


def create_queued(
    session: Session, tenant_id: uuid.UUID, spec: dict[str, Any], webhook_url: str | None
) -> Job:
    job = Job(
        id=uuid.uuid4(), tenant_id=tenant_id, status="queued", progress=0.0, spec=spec, metrics={},
        webhook_url=webhook_url, cancel_requested=False, attempts=0,
    )  # fmt: skip
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


def list_page(
    session: Session, *, tenant_id: uuid.UUID | None, status: str | None, cursor: Cursor | None,
    limit: int,
) -> tuple[list[Job], Cursor | None]:  # fmt: skip
    stmt = select(Job)
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    return page(session, stmt, Job, cursor, limit)


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
