"""What the registry names in the artifact store, and which jobs' work folders are dead (the
job ended failed or canceled, or has no row: deleted): the queries of the sweeper
(app.services.sweeper)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import CompoundSelect, func, select, union
from sqlalchemy.orm import Session

from app.db.models import Artifact, Job, UploadedDataset, UploadedModel

DEAD_STATUSES = ("failed", "canceled")


def _named() -> CompoundSelect[tuple[str]]:
    return union(
        select(UploadedModel.storage_key.label("key")),
        select(UploadedDataset.storage_key.label("key")),
        # An expired artifact's row stays (app.services.retention), but names no file.
        select(Artifact.storage_key.label("key")).where(Artifact.expired_at.is_(None)),
    )


def named_keys(session: Session) -> set[str]:
    """Every storage key a model, data set or artifact row names."""
    return set(session.scalars(select(_named().subquery().c.key)))


def is_named(session: Session, key: str) -> bool:
    for column in (UploadedModel.storage_key, UploadedDataset.storage_key, Artifact.storage_key):
        stmt = select(column).where(column == key)
        if column is Artifact.storage_key:
            stmt = stmt.where(Artifact.expired_at.is_(None))
        if session.scalar(stmt.limit(1)) is not None:
            return True
    return False


def dead_jobs(
    session: Session, job_ids: Sequence[uuid.UUID], *, finished_before: datetime
) -> set[uuid.UUID]:
    """Those of `job_ids` that ended failed or canceled before `finished_before`."""
    if not job_ids:
        return set()
    stmt = select(Job.id).where(
        Job.id.in_(list(job_ids)),
        Job.status.in_(DEAD_STATUSES),
        func.coalesce(Job.finished_at, Job.updated_at) < finished_before,
    )
    return set(session.scalars(stmt))


def without_row(session: Session, job_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `job_ids` that no job row has (deleted jobs)."""
    if not job_ids:
        return set()
    have = set(session.scalars(select(Job.id).where(Job.id.in_(list(job_ids)))))
    return set(job_ids) - have


def has_jobs(session: Session) -> bool:
    """Whether the registry holds any job at all."""
    return session.scalar(select(Job.id).limit(1)) is not None
