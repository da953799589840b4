"""The sweeper on the real PostgreSQL (the test's rolled-back transaction) with the local
store and an S3 store (moto on loopback): objects no row names are removed once older than
the grace period, named ones and fresh ones never; a failed row insert after the store write
(the "store files without rows" finding) is cleaned up; upload temporaries a killed API left
and the checkpoints and scratch of failed or canceled jobs are removed, the rest kept."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Artifact, Job, UploadedDataset, UploadedModel
from app.repositories import store_refs
from app.services import datasets as datasets_service
from app.services.sweeper import sweep_once
from app.settings import Settings
from app.storage import LocalStore, StoredObject
from app.storage_s3 import S3Store
from app.stores import get_store
from app.tenancy import Caller
from tests.factories import s3 as s3_fixtures
from tests.factories.jobs import make_job
from tests.factories.tenants import default_tenant_id

s3_endpoint = s3_fixtures.s3_endpoint
s3_env = s3_fixtures.s3_env
GRACE_S = 3600
HOURS_AGO = time.time() - 7 * 3600


@pytest.fixture
def factory(db_session: Session) -> Callable[[], Session]:
    def _factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    return _factory


def local_settings(tmp_path: Path, **over: Any) -> Settings:
    return Settings(storage_dir=tmp_path / "store", work_dir=tmp_path / "work",
                    sweep_grace_s=GRACE_S, **over)  # fmt: skip


def age(path: Path) -> None:
    os.utime(path, (HOURS_AGO, HOURS_AGO))


def name_as_model(db: Session, stored: StoredObject) -> None:
    db.add(UploadedModel(
        tenant_id=default_tenant_id(db), name="m", filename="m.tar.gz", archive_format="tar.gz",
        size_bytes=stored.size_bytes, sha256=stored.sha256, storage_key=stored.key,
        architecture="BertModel", num_labels=2, num_parameters=1, config={},
    ))  # fmt: skip
    db.commit()


def name_as_dataset(db: Session, stored: StoredObject, *, commit: bool = True) -> None:
    db.add(UploadedDataset(
        tenant_id=default_tenant_id(db), name="d", filename="d.csv", format="csv",
        size_bytes=stored.size_bytes, sha256=stored.sha256, storage_key=stored.key,
        columns=["text", "label"], text_columns=["text"], label_column="label",
        labels=["0", "1"], num_rows=2,
    ))  # fmt: skip
    db.commit() if commit else db.flush()


def name_as_artifact(db: Session, stored: StoredObject) -> None:
    job = make_job(db, default_tenant_id(db))
    db.add(Artifact(job_id=job.id, kind="report", filename="r.json",
                    media_type="application/json", size_bytes=stored.size_bytes,
                    sha256=stored.sha256, storage_key=stored.key))  # fmt: skip
    db.commit()


def put(store: LocalStore | S3Store, data: bytes) -> StoredObject:
    return store.put_stream(io.BytesIO(data))


def test_local_orphans_go_named_and_fresh_objects_stay(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path
) -> None:
    s = local_settings(tmp_path)
    store = LocalStore(s.storage_dir)
    model, dataset, artifact = put(store, b"model"), put(store, b"dataset"), put(store, b"art")
    orphan, fresh_orphan, reput = put(store, b"orphan"), put(store, b"new"), put(store, b"again")
    for stored in (model, dataset, artifact, orphan, reput):
        age(store.local_path(stored.key))
    name_as_model(db_session, model)
    name_as_dataset(db_session, dataset)
    name_as_artifact(db_session, artifact)
    assert put(store, b"again") == reput  # an upload of the old orphan's content is under way

    report = sweep_once(factory, s)
    assert report.objects == [orphan.key] and report.bytes_freed == len(b"orphan")
    assert not store.exists(orphan.key)
    for kept in (model, dataset, artifact, fresh_orphan, reput):
        assert store.exists(kept.key), kept
    assert sweep_once(factory, s).objects == []


def test_a_failed_row_insert_leaves_a_file_the_sweeper_removes(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path
) -> None:
    """The finding: the archive is stored, then the insert fails (here a tenant that does not
    exist: a real foreign-key error from PostgreSQL); the file stays without a row."""
    s = local_settings(tmp_path)
    csv = b"text,label\n" + b"".join(b"film %d,%d\n" % (i, i % 2) for i in range(20))
    with pytest.raises(IntegrityError), db_session.begin_nested():
        datasets_service.upload(
            db_session, s, io.BytesIO(csv), "d.csv", name=None, fmt=None,
            text_columns=None, label_column=None, caller=Caller(uuid.uuid4()),
        )  # fmt: skip
    store = LocalStore(s.storage_dir)
    [left] = list(store.iter_objects())
    age(store.local_path(left.key))
    named = put(store, b"someone's model")
    name_as_model(db_session, named)

    report = sweep_once(factory, s)
    assert report.objects == [left.key] and [o.key for o in store.iter_objects()] == [named.key]


def test_no_row_at_all_leaves_the_store_alone(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path
) -> None:
    """A registry that names nothing (another database?) never empties a store."""
    s = local_settings(tmp_path)
    store = LocalStore(s.storage_dir)
    db_session.query(Artifact).delete()
    db_session.query(UploadedModel).delete()
    db_session.query(UploadedDataset).delete()
    db_session.commit()
    lonely = put(store, b"lonely")
    age(store.local_path(lonely.key))
    report = sweep_once(factory, s)
    assert report.objects == [] and report.skipped and store.exists(lonely.key)


def test_stale_upload_temporaries_go_fresh_ones_stay(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path
) -> None:
    s = local_settings(tmp_path)
    uploads = s.work_dir / "uploads"
    uploads.mkdir(parents=True)
    killed, live = uploads / "tmpkilled1", uploads / "tmplive22"
    killed.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    other = uploads / "keep.me"
    other.write_bytes(b"z")
    spool = s.storage_dir / "tmp" / "tmpspool"
    spool.parent.mkdir(parents=True)
    spool.write_bytes(b"s")
    for path in (killed, other, spool):
        age(path)
    report = sweep_once(factory, s)
    assert sorted(report.temporaries) == sorted([killed, spool])
    assert live.exists() and other.exists() and not killed.exists() and not spool.exists()


def job_with_folders(db: Session, work: Path, status: str, finished_h_ago: float | None) -> Job:
    job = make_job(db, default_tenant_id(db))
    job.status = status
    if finished_h_ago is not None:
        job.finished_at = utcnow() - timedelta(hours=finished_h_ago)
    db.commit()
    step = work / str(job.id) / "checkpoints" / "0001-stage-dense"
    step.mkdir(parents=True)
    (step / "state.pt").write_bytes(b"w" * 4096)
    scratch = work / "jobs" / str(job.id)
    scratch.mkdir(parents=True)
    (scratch / "export.onnx").write_bytes(b"o")
    return job


def test_dead_jobs_checkpoints_and_scratch_go(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path
) -> None:
    s = local_settings(tmp_path)
    work = s.work_dir
    failed = job_with_folders(db_session, work, "failed", 7)
    canceled = job_with_folders(db_session, work, "canceled", 7)
    just_failed = job_with_folders(db_session, work, "failed", 0.1)
    succeeded = job_with_folders(db_session, work, "succeeded", 7)
    running = job_with_folders(db_session, work, "running", None)
    queued = job_with_folders(db_session, work, "queued", None)
    unknown = work / str(uuid.uuid4())  # no row in this registry: not ours to judge
    unknown.mkdir()
    (work / "models" / "abc").mkdir(parents=True)

    report = sweep_once(factory, s)
    gone = {failed.id, canceled.id}
    assert len(report.job_folders) == 4
    for j in (failed, canceled, just_failed, succeeded, running, queued):
        exists = (work / str(j.id)).exists(), (work / "jobs" / str(j.id)).exists()
        assert exists == ((False, False) if j.id in gone else (True, True)), j.status
    assert unknown.exists() and (work / "models" / "abc").exists()


def test_s3_orphans_go_named_and_touched_objects_stay(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path,
    s3_env: dict[str, str],
) -> None:  # fmt: skip
    s = Settings(storage_dir=tmp_path / "cache", work_dir=tmp_path / "work",
                 sweep_grace_s=GRACE_S, **s3_env)  # type: ignore[arg-type]  # fmt: skip
    store = get_store(s)
    assert isinstance(store, S3Store)
    named, orphan, reput = put(store, b"named"), put(store, b"orphan"), put(store, b"again")
    name_as_artifact(db_session, named)
    cached = store.local_path(orphan.key)  # the worker's local copy of it
    age(cached)
    time.sleep(1.5)  # S3 times have a second's resolution
    between = utcnow()
    time.sleep(1.5)
    assert put(store, b"again") == reput  # re-uploaded: LastModified refreshed
    modified = store.modified_at(reput.key)
    assert modified is not None and modified > between

    # Sweep as if `between` were grace_s ago: older objects are past their grace.
    report = sweep_once(factory, s, now=between + timedelta(seconds=GRACE_S))
    assert report.objects == [orphan.key]
    assert not store.exists(orphan.key) and store.exists(named.key) and store.exists(reput.key)
    assert not cached.exists() and cached in report.temporaries


def reupload_after_the_row_check(
    monkeypatch: pytest.MonkeyPatch, store: LocalStore | S3Store, data: bytes
) -> list[StoredObject]:
    """The race: the sweeper has found no row naming the object; before it deletes, an
    upload of the same content puts it (refreshing its time) and writes its row (on the
    sweeper's connection, so that the row is there for it to see)."""
    real = store_refs.is_named
    done: list[StoredObject] = []

    def is_named_then_reupload(session: Session, key: str) -> bool:
        answer = real(session, key)
        if not done:
            done.append(put(store, data))
            name_as_dataset(session, done[0], commit=False)
        return answer

    monkeypatch.setattr(store_refs, "is_named", is_named_then_reupload)
    return done


def test_a_reupload_between_the_row_check_and_the_delete_keeps_the_object(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    s = local_settings(tmp_path)
    store = LocalStore(s.storage_dir)
    orphan = put(store, b"an old orphan")
    age(store.local_path(orphan.key))
    name_as_model(db_session, put(store, b"someone's model"))
    reput = reupload_after_the_row_check(monkeypatch, store, b"an old orphan")

    report = sweep_once(factory, s)
    assert reput == [orphan]  # the race happened, and a row names the object now
    assert report.objects == [] and store.exists(orphan.key)
    assert store.local_path(orphan.key).read_bytes() == b"an old orphan"
    assert list((s.storage_dir / "tmp").iterdir()) == []  # nothing left aside


def test_a_put_while_the_sweeper_has_the_file_aside_writes_it_again(tmp_path: Path) -> None:
    """A put that finds the file gone (renamed aside by a delete) stores its own copy."""
    store = LocalStore(tmp_path / "store")
    stored = put(store, b"bytes")
    path = store.local_path(stored.key)
    age(path)
    judged = store.modified_at(stored.key)
    assert judged is not None
    path.unlink()  # as if set aside this instant
    assert put(store, b"bytes") == stored and path.read_bytes() == b"bytes"
    assert not store.delete_unless_modified(stored.key, judged) and store.exists(stored.key)
    age(path)
    assert store.delete_unless_modified(stored.key, store.modified_at(stored.key) or judged)
    assert not store.exists(stored.key)


def test_s3_a_reupload_between_the_row_check_and_the_delete_keeps_the_object(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path,
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    s = Settings(storage_dir=tmp_path / "cache", work_dir=tmp_path / "work",
                 sweep_grace_s=GRACE_S, **s3_env)  # type: ignore[arg-type]  # fmt: skip
    store = get_store(s)
    assert isinstance(store, S3Store)
    orphan = put(store, b"an old orphan")
    name_as_artifact(db_session, put(store, b"named"))
    time.sleep(1.5)  # S3 times have a second's resolution
    reput = reupload_after_the_row_check(monkeypatch, store, b"an old orphan")

    report = sweep_once(factory, s, now=utcnow() + timedelta(seconds=GRACE_S))
    assert reput == [orphan] and report.objects == [] and store.exists(orphan.key)


def test_s3_touch_keeps_the_content_type_and_metadata(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    s = Settings(storage_dir=tmp_path / "cache", work_dir=tmp_path / "work",
                 **s3_env)  # type: ignore[arg-type]  # fmt: skip
    store = get_store(s)
    assert isinstance(store, S3Store)
    key = LocalStore.key_for("ab" * 32)
    name = store._object_key(key)
    store.client.put_object(
        Bucket=store.bucket, Key=name, Body=b"{}", ContentType="application/json",
        ContentDisposition='attachment; filename="r.json"', Metadata={"origin": "worker"},
    )  # fmt: skip
    before = store.modified_at(key)
    time.sleep(1.1)
    assert store.touch(key)
    head = store.client.head_object(Bucket=store.bucket, Key=name)
    assert head["ContentType"] == "application/json"
    assert head["ContentDisposition"] == 'attachment; filename="r.json"'
    assert head["Metadata"]["origin"] == "worker" and "touched-at" in head["Metadata"]
    assert before is not None and head["LastModified"] > before
    assert not store.touch(LocalStore.key_for("cd" * 32))  # gone: the put uploads instead
