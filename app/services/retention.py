"""Artifact retention: with artifact_retention_days set, the artifacts of a job that ended
(succeeded, failed or canceled) more than that many days ago expire. Each is marked expired
(artifact.expired_at: the job's listing shows it, a download is a 410 `artifact_expired`)
and its file leaves the store unless another row still names it or it was put again since
(app.services.store_release; what is left the sweeper removes once nothing names it).

Runs on every pass of the sweeper (app.services.sweeper.sweep_once), in batches, each
committed before its files are removed; rows are taken FOR UPDATE SKIP LOCKED, so sweepers
in several workers never expire the same artifact twice."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.repositories import artifacts as artifacts_repo
from app.services.store_release import Released, release
from app.settings import Settings
from app.storage import ArtifactStore

log = logging.getLogger("scalpel.retention")
BATCH = 200


def expire_artifacts(
    session: Session, settings: Settings, store: ArtifactStore, *, now: datetime
) -> tuple[list[uuid.UUID], list[str]]:
    """The artifacts expired on this pass, and the store keys removed."""
    days = settings.artifact_retention_days
    if days is None:
        return [], []
    cutoff = now - timedelta(days=days)
    expired: list[uuid.UUID] = []
    removed: list[str] = []
    while True:
        batch = artifacts_repo.lock_expirable(session, finished_before=cutoff, limit=BATCH)
        if not batch:
            break
        for artifact in batch:
            artifact.expired_at = now
        released = [Released(a.storage_key, a.created_at) for a in batch]
        expired.extend(a.id for a in batch)
        session.commit()
        removed.extend(release(session, store, released))
        if len(batch) < BATCH:
            break
    if expired:
        log.info(
            "retention: %d artifact(s) of jobs that ended before %s expired, %d file(s) "
            "removed", len(expired), cutoff.isoformat(), len(removed),
        )  # fmt: skip
    return expired, removed
