"""The artifact store the settings name: local (app.storage) or S3 (app.storage_s3). Its own
module so that neither backend imports the other's factory."""

from __future__ import annotations

from app.settings import Settings
from app.storage import ArtifactStore, LocalStore


def get_store(settings: Settings) -> ArtifactStore:
    """The store settings.storage_backend names (API and worker alike)."""
    if settings.storage_backend == "s3":
        from app.storage_s3 import S3Store  # boto3 is imported only where S3 is used

        return S3Store.from_settings(settings)
    return LocalStore(settings.storage_dir)
