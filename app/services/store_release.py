"""Remove a store object once the row that named it is gone (a deleted job's artifacts, a
deleted model or data set, an expired artifact), when nothing else can want it.

The store is content addressed: the same bytes uploaded twice, or produced by two jobs, are
one object named by two rows, so an object goes only when no row names it any more
(app.repositories.store_refs). A put of content already stored refreshes the object's time,
and the object was written before the row that named it (`written_at`, the row's
created_at): an object whose time is later than that row was put again since, by an upload
or a job that may not have written its row yet. Such an object is left for the sweeper,
which removes it once no row names it and its grace period has passed; so is every object
that cannot be removed now (a store error). The removal itself is `delete_unless_modified`:
a put between the checks and the removal keeps the object (see app.services.sweeper)."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from app.repositories import store_refs
from app.storage import ArtifactStore

log = logging.getLogger("scalpel.store")
CHECKPOINTS_PARENT = ""  # <work_dir>/<job id>: the job's checkpoints
SCRATCH_PARENT = "jobs"  # <work_dir>/jobs/<job id>: the job's scratch


@dataclass(frozen=True)
class Released:
    """A store key a removed (or expired) row named, and when that row was written."""

    key: str
    written_at: datetime

    def when(self) -> datetime:
        """written_at, aware (SQLite gives naive UTC times back)."""
        w = self.written_at
        return w if w.tzinfo is not None else w.replace(tzinfo=UTC)


def release(session: Session, store: ArtifactStore, released: Iterable[Released]) -> list[str]:
    """Remove each object no row names and nothing has put again since its row was written;
    returns the keys removed. Call it after the rows' removal is committed."""
    removed: list[str] = []
    by_key: dict[str, datetime] = {}
    for r in released:
        by_key[r.key] = max(r.when(), by_key.get(r.key, r.when()))
    for key, written_at in sorted(by_key.items()):
        try:
            modified = store.modified_at(key)
            if modified is None or modified > written_at or store_refs.is_named(session, key):
                continue
            if store.delete_unless_modified(key, modified):
                removed.append(key)
        except Exception:
            log.warning("store object %s not removed; the sweeper will", key, exc_info=True)
    return removed


def remove_job_folders(work_dir: Path, job_id: uuid.UUID) -> list[Path]:
    """The job's checkpoints and scratch under work_dir (what the worker left); returns
    those removed."""
    gone: list[Path] = []
    for parent in (CHECKPOINTS_PARENT, SCRATCH_PARENT):
        path = work_dir / parent / str(job_id)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone
