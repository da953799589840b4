"""Artifact queries."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Artifact, Job


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
