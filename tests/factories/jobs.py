"""Jobs and artifacts made straight in the database (the worker makes artifacts)."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import TERMINAL_STATUSES, Artifact, Job
from app.repositories import artifacts as artifacts_repo
from app.repositories import jobs as jobs_repo
from app.settings import get_settings
from app.stores import get_store


def make_job(session: Session, tenant_id: uuid.UUID) -> Job:
    """A queued job of the tenant's, committed."""
    job = jobs_repo.create_queued(session, tenant_id, {"model": "minilm-l6"}, None)
    session.commit()
    return job


def make_listed_job(
    session: Session, tenant_id: uuid.UUID, *, status: str = "queued",
    spec: dict[str, Any] | None = None, name: str | None = None,
    labels: dict[str, str] | None = None, created_at: datetime | None = None,
    finished_ago: timedelta | None = None,
) -> Job:  # fmt: skip
    """A job of the tenant's in `status`, made as a submission would store it (a spec, name,
    labels), created at `created_at`, a terminal one finished `finished_ago` (default: now);
    committed."""
    job = jobs_repo.create_queued(
        session, tenant_id, spec or {"model": "minilm-l6", "dataset": {"name": "sst2"}}, None,
        name=name, labels=labels,
    )  # fmt: skip
    job.status = status
    if created_at is not None:
        job.created_at = created_at
    if status in TERMINAL_STATUSES:
        job.finished_at = utcnow() - (finished_ago or timedelta(0))
    session.commit()
    return job


def make_artifact(session: Session, job: Job, data: bytes, kind: str = "model") -> Artifact:
    """The job's artifact, its bytes in the configured store; committed."""
    stored = get_store(get_settings()).put_stream(io.BytesIO(data))
    art = artifacts_repo.add(
        session,
        Artifact(job_id=job.id, kind=kind, filename="model.tar.gz",
                 media_type="application/gzip", size_bytes=stored.size_bytes,
                 sha256=stored.sha256, storage_key=stored.key),
    )  # fmt: skip
    session.commit()
    return art
