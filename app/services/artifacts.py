"""Artifact listing and download metadata."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.db.models import Artifact
from app.errors import Gone, NotFound
from app.repositories import artifacts as artifacts_repo
from app.services import jobs as jobs_service
from app.settings import Settings
from app.storage_s3 import S3Store
from app.stores import get_store
from app.tenancy import Caller


@dataclass(frozen=True)
class Download:
    artifact: Artifact
    path: Path | None  # None when redirect_url is set
    etag: str
    headers: dict[str, str]
    redirect_url: str | None = None


def for_job(session: Session, raw_job_id: str, caller: Caller) -> list[Artifact]:
    job = jobs_service.get(session, raw_job_id, caller)
    return artifacts_repo.for_job(session, job.id)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison, as RFC 9110 asks for If-None-Match."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def download(
    session: Session, settings: Settings, raw_id: str, caller: Caller, *, redirect: bool = True
) -> Download:
    """With the S3 backend and `redirect`, a presigned URL; otherwise a local file (S3 objects
    are fetched into the store's cache first) served with Range and ETag."""
    try:
        artifact = artifacts_repo.get(session, uuid.UUID(raw_id), tenant_id=caller.scope)
    except ValueError:
        artifact = None
    if artifact is None:
        raise NotFound(f"no artifact {raw_id!r}", code="artifact_not_found")
    if artifact.expired_at is not None:
        raise Gone(
            f"artifact {artifact.id} expired at {artifact.expired_at.isoformat()}: artifacts "
            "are kept for the configured retention after their job ends, and its file was "
            "removed", code="artifact_expired",
        )  # fmt: skip
    store = get_store(settings)
    if not store.exists(artifact.storage_key):
        raise NotFound("the artifact's file is missing from the store", code="artifact_missing")
    etag = f'"{artifact.sha256}"'
    b64 = base64.b64encode(bytes.fromhex(artifact.sha256)).decode()
    headers = {
        "ETag": etag,
        "Repr-Digest": f"sha-256=:{b64}:",
        "X-Checksum-SHA256": artifact.sha256,
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    if redirect and isinstance(store, S3Store):
        url = store.presigned_url(
            artifact.storage_key, filename=artifact.filename, media_type=artifact.media_type,
            expires_s=settings.s3_presign_expiry_s,
        )  # fmt: skip
        return Download(artifact, None, etag, headers, redirect_url=url)
    return Download(artifact, store.local_path(artifact.storage_key), etag, headers)
