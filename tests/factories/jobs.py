"""Jobs and artifacts made straight in the database (the worker makes artifacts)."""

from __future__ import annotations

import io
import uuid

from sqlalchemy.orm import Session

from app.db.models import Artifact, Job
from app.repositories import artifacts as artifacts_repo
from app.repositories import jobs as jobs_repo
from app.settings import get_settings
from app.stores import get_store


def make_job(session: Session, tenant_id: uuid.UUID) -> Job:
    """A queued job of the tenant's, committed."""
    job = jobs_repo.create_queued(session, tenant_id, {"model": "minilm-l6"}, None)
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
