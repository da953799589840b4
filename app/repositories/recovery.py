"""Queries of the reaper and the outbox: lost running jobs and queued jobs not handed to the
broker. Rows are locked FOR UPDATE SKIP LOCKED (on PostgreSQL), so reapers running in several
workers at once never take the same job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.locks import advisory_key
from app.db.models import Job, JobEvent
from app.repositories import events as _events  # noqa: F401  (numbers every JobEvent)


def lock_stale_running(session: Session, *, before: datetime, limit: int) -> list[Job]:
    """Running jobs whose last sign of life (heartbeat, else start) is older than `before`."""
    last_seen = func.coalesce(Job.heartbeat_at, Job.started_at, Job.updated_at)
    stmt = (
        select(Job)
        .where(Job.status == "running", last_seen < before)
        .order_by(last_seen)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def worker_gone(session: Session, job_id: uuid.UUID) -> bool:
    """On PostgreSQL the worker running a job holds the job's advisory lock on its own
    connection, released by the server when the process dies: True when the lock is free
    (taken here until this transaction ends, so no worker claims the job meanwhile). On
    other databases there is no such lock and a stale heartbeat is the only sign."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    got = session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": advisory_key(job_id)})
    return bool(got)


def requeue(session: Session, job: Job, message: str) -> None:
    """Back to queued, undispatched (attempts is kept: it already counts the lost start)."""
    job.status = "queued"
    job.dispatched_at = None
    session.add(JobEvent(job_id=job.id, kind="status", status="queued", message=message))


def fail_lost(session: Session, job: Job, message: str) -> None:
    job.status = "failed"
    job.finished_at = utcnow()
    job.error_code = "worker_lost"
    job.error_message = message
    session.add(
        JobEvent(
            job_id=job.id, kind="status", status="failed", message=message,
            data={"code": "worker_lost"},
        )
    )  # fmt: skip


def lock_undispatched(
    session: Session,
    *,
    quiet_before: datetime,
    redispatch_before: datetime,
    also: Sequence[uuid.UUID] = (),
    limit: int,
) -> list[Job]:
    """Queued jobs to hand (again) to the broker: never handed over and untouched since
    `quiet_before` (the API's own after-commit publish had its chance), handed over before
    `redispatch_before` and still queued (the message was lost), or listed in `also`."""
    due = or_(
        and_(Job.dispatched_at.is_(None), Job.updated_at < quiet_before),
        Job.dispatched_at < redispatch_before,
    )
    if also:
        due = or_(due, Job.id.in_(list(also)))
    stmt = (
        select(Job)
        .where(Job.status == "queued", due)
        .order_by(Job.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def set_dispatched(session: Session, job_ids: Sequence[uuid.UUID], when: datetime) -> None:
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(list(job_ids)))
            .values(dispatched_at=when)
            .execution_options(synchronize_session="fetch")
        )


def dispatched_queued_ids(session: Session, *, dispatched_before: datetime) -> list[uuid.UUID]:
    """Ids of queued jobs handed to the broker before `dispatched_before` (no lock)."""
    stmt = select(Job.id).where(Job.status == "queued", Job.dispatched_at < dispatched_before)
    return list(session.scalars(stmt))


def lock_still_dispatched_queued(
    session: Session, job_ids: Sequence[uuid.UUID], *, dispatched_before: datetime, limit: int
) -> list[Job]:
    """Those of `job_ids` still queued and dispatched before `dispatched_before`, locked."""
    if not job_ids:
        return []
    stmt = (
        select(Job)
        .where(
            Job.id.in_(list(job_ids)),
            Job.status == "queued",
            Job.dispatched_at < dispatched_before,
        )
        .order_by(Job.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))
