"""What the registry names in the artifact store, and which jobs' work folders are dead:
the queries of the sweeper (app.services.sweeper)."""

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
        select(Artifact.storage_key.label("key")),
    )


def named_keys(session: Session) -> set[str]:
    """Every storage key a model, data set or artifact row names."""
    return set(session.scalars(select(_named().subquery().c.key)))


def is_named(session: Session, key: str) -> bool:
    for column in (UploadedModel.storage_key, UploadedDataset.storage_key, Artifact.storage_key):
        if session.scalar(select(column).where(column == key).limit(1)) is not None:
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
