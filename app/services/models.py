"""Uploaded models: validate the archive, store it, register it."""

from __future__ import annotations

import uuid
from typing import BinaryIO

from sqlalchemy.orm import Session

from app.db.models import UploadedModel
from app.errors import NotFound, Unprocessable
from app.pagination import check_limit, decode_token, encode_token
from app.repositories import uploads as uploads_repo
from app.services.archives import ArchiveError, sniff_format
from app.services.model_inspect import inspect_archive
from app.services.spool import spooled
from app.settings import Settings
from app.stores import get_store
from app.tenancy import Caller

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")


def _default_name(filename: str) -> str:
    lower = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return filename[: -len(suffix)] or filename
    return filename


def upload(
    session: Session, settings: Settings, stream: BinaryIO, filename: str, name: str | None,
    caller: Caller,
) -> UploadedModel:  # fmt: skip
    """The model belongs to the caller's tenant."""
    with spooled(stream, settings.work_dir, settings.max_model_upload_bytes) as spool:
        try:
            fmt = sniff_format(spool.path)
            info = inspect_archive(
                spool.path, fmt, max_members=settings.max_archive_members,
                max_total_bytes=settings.max_uncompressed_model_bytes,
            )  # fmt: skip
        except ArchiveError as exc:
            raise Unprocessable(exc.message, code=exc.code, field="file") from exc
        stored = get_store(settings).put_file(spool.path)
    model = UploadedModel(
        id=uuid.uuid4(), tenant_id=caller.tenant_id, name=(name or _default_name(filename))[:255],
        filename=filename[:255], archive_format=fmt, size_bytes=stored.size_bytes,
        sha256=stored.sha256, storage_key=stored.key, architecture=info.architecture,
        num_labels=info.num_labels, num_parameters=info.num_parameters, config=info.config,
    )  # fmt: skip
    return uploads_repo.add_model(session, model)


def get(session: Session, raw_id: str, caller: Caller) -> UploadedModel:
    try:
        model = uploads_repo.get_model(session, uuid.UUID(raw_id), tenant_id=caller.scope)
    except ValueError:
        model = None
    if model is None:
        raise NotFound(f"no model {raw_id!r}", code="model_not_found")
    return model


def list_models(
    session: Session, settings: Settings, caller: Caller, limit: int | None,
    page_token: str | None,
) -> tuple[list[UploadedModel], str | None]:  # fmt: skip
    items, nxt = uploads_repo.list_models(
        session, decode_token(page_token), check_limit(limit, settings), tenant_id=caller.scope
    )
    return items, encode_token(nxt) if nxt else None
