"""Artifact queries."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Artifact


def add(session: Session, artifact: Artifact) -> Artifact:
    session.add(artifact)
    session.flush()
    return artifact


def get(session: Session, artifact_id: uuid.UUID) -> Artifact | None:
    return session.get(Artifact, artifact_id)


def for_job(session: Session, job_id: uuid.UUID) -> list[Artifact]:
    stmt = select(Artifact).where(Artifact.job_id == job_id)
    return list(session.scalars(stmt.order_by(Artifact.created_at, Artifact.kind)))
