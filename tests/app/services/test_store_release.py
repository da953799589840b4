"""app.services.store_release: after its rows are gone, a store object is removed only when
no row names it and nothing has put it again since the last of those rows was written; a
store that fails leaves the object to the sweeper without failing the caller."""

from __future__ import annotations

import io
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.db.models import UploadedModel
from app.services.store_release import Released, release, remove_job_folders
from app.storage import LocalStore
from tests.factories.tenants import default_tenant_id


def put(store: LocalStore, data: bytes) -> tuple[str, datetime]:
    """An object, and a row time just after its put (as a row written after it)."""
    key = store.put_stream(io.BytesIO(data)).key
    modified = store.modified_at(key)
    assert modified is not None
    return key, modified + timedelta(milliseconds=1)


def test_unnamed_objects_go_named_ones_stay(db_session: Session, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    free, free_at = put(store, b"free")
    named, named_at = put(store, b"named")
    db_session.add(UploadedModel(
        tenant_id=default_tenant_id(db_session), name="m", filename="m.zip",
        archive_format="zip", size_bytes=5, sha256="0" * 64, storage_key=named,
        architecture="BertModel", num_parameters=1, config={},
    ))  # fmt: skip
    db_session.flush()
    removed = release(db_session, store, [Released(free, free_at), Released(named, named_at)])
    assert removed == [free]
    assert not store.exists(free) and store.exists(named)


def test_an_object_put_after_its_row_stays(db_session: Session, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    key, written = put(store, b"again")
    later = (written + timedelta(seconds=5)).timestamp()
    os.utime(store.local_path(key), (later, later))
    assert release(db_session, store, [Released(key, written)]) == []
    assert store.exists(key)


def test_the_latest_row_of_a_key_counts(db_session: Session, tmp_path: Path) -> None:
    """Two removed rows naming one object: it was put again for the later one, not since."""
    store = LocalStore(tmp_path)
    key, written = put(store, b"twice")
    early = written - timedelta(days=1)
    assert release(db_session, store, [Released(key, early), Released(key, written)]) == [key]


def test_naive_row_times_are_utc_and_missing_objects_are_skipped(
    db_session: Session, tmp_path: Path
) -> None:
    """SQLite gives row times back without their zone."""
    store = LocalStore(tmp_path)
    key, written = put(store, b"naive")
    naive = written.astimezone(UTC).replace(tzinfo=None)
    gone = LocalStore.key_for("ab" * 32)
    assert release(db_session, store, [Released(key, naive), Released(gone, naive)]) == [key]


class BrokenStore(LocalStore):
    def delete_unless_modified(self, key: str, modified_at: datetime) -> bool:
        raise OSError("the disk went away")


def test_a_store_error_is_logged_not_raised(
    db_session: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = BrokenStore(tmp_path)
    key, written = put(store, b"broken")
    assert release(db_session, store, [Released(key, written)]) == []
    assert store.exists(key)
    assert "the sweeper will" in caplog.text


def test_a_jobs_folders_go_and_no_other(tmp_path: Path) -> None:
    job, other = uuid.uuid4(), uuid.uuid4()
    for folder in (tmp_path / str(job) / "checkpoints", tmp_path / "jobs" / str(job),
                   tmp_path / str(other)):  # fmt: skip
        folder.mkdir(parents=True)
    assert remove_job_folders(tmp_path, job) == [tmp_path / str(job), tmp_path / "jobs" / str(job)]
    assert not (tmp_path / str(job)).exists() and not (tmp_path / "jobs" / str(job)).exists()
    assert (tmp_path / str(other)).exists()
    assert remove_job_folders(tmp_path, job) == []
