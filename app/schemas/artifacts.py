"""Artifact responses."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from app.db.models import Artifact


class ArtifactOut(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID
    kind: str
    filename: str
    media_type: str
    size_bytes: int
    sha256: str
    created_at: datetime
    download_url: str

    @classmethod
    def of(cls, a: Artifact) -> ArtifactOut:
        return cls(
            id=a.id, job_id=a.job_id, kind=a.kind, filename=a.filename,
            media_type=a.media_type, size_bytes=a.size_bytes, sha256=a.sha256,
            created_at=a.created_at, download_url=f"/v1/artifacts/{a.id}",
        )  # fmt: skip


class ArtifactList(BaseModel):
    items: list[ArtifactOut]
