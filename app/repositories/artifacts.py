"""Artifact queries."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import TERMINAL_STATUSES, Artifact, Job


def add(session: Session, artifact: Artifact) -> Artifact:
    session.add(artifact)
    session.flush()
    return artifact


def get(
    session: Session, artifact_id: uuid.UUID, *, tenant_id: uuid.UUID | None
) -> Artifact | None:
    """An artifact belongs to its job's tenant; tenant_id None: any tenant's (admin)."""
    stmt = select(Artifact).where(Artifact.id == artifact_id)
    if tenant_id is not None:
        stmt = stmt.join(Job, Job.id == Artifact.job_id).where(Job.tenant_id == tenant_id)
    return session.scalars(stmt).one_or_none()


def for_job(session: Session, job_id: uuid.UUID) -> list[Artifact]:
    stmt = select(Artifact).where(Artifact.job_id == job_id)
    return list(session.scalars(stmt.order_by(Artifact.created_at, Artifact.kind)))


def lock_expirable(session: Session, *, finished_before: datetime, limit: int) -> list[Artifact]:
    """Artifacts not yet expired of jobs that ended before `finished_before`, oldest first,
    locked FOR UPDATE SKIP LOCKED (two sweepers never take the same one)."""
    ended = func.coalesce(Job.finished_at, Job.updated_at)
    stmt = (
        select(Artifact)
        .join(Job, Job.id == Artifact.job_id)
        .where(
            Artifact.expired_at.is_(None),
            Job.status.in_(sorted(TERMINAL_STATUSES)),
            ended < finished_before,
        )
        .order_by(ended, Artifact.id)
        .limit(limit)
        .with_for_update(of=Artifact, skip_locked=True)
    )
    return list(session.scalars(stmt))
