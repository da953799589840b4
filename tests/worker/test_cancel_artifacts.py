"""A running job canceled after it registered artifacts: they are deleted from the registry and
the store, unless the cancel asked to keep them (keep_partial_artifacts)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Artifact
from app.services import jobs as jobs_service
from app.storage import LocalStore
from app.tenancy import Caller
from tests.factories.tenants import default_tenant_id
from tests.worker.test_runner import add_job, fresh, make_files, run, spec
from worker.job_store import JobStore


@pytest.fixture
def runner_env(tmp_path: Path, db_session: Session) -> dict[str, Any]:
    settings, store, model = make_files(tmp_path)
    model.tenant_id = default_tenant_id(db_session)
    db_session.add(model)
    db_session.flush()

    def factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    return {"settings": settings, "store": store, "model": model, "factory": factory,
            "model_id": model.id}  # fmt: skip


def cancel_after_first_artifact(
    env: dict[str, Any], db: Session, monkeypatch: pytest.MonkeyPatch, *, keep: bool,
    at: str = "model",
) -> list[str]:  # fmt: skip
    """Once the job registers its `at` artifact (by default the model archive), a user cancels
    it through the service (the worker stops at the next progress write in the package stage,
    or, after the last one, at its terminal commit); returns the storage keys the job
    registered."""
    original = JobStore.add_artifact
    keys: list[str] = []

    def add_then_cancel(self: JobStore, job_id: uuid.UUID, **kw: Any) -> uuid.UUID:
        art_id = original(self, job_id, **kw)
        keys.append(kw["stored"].key)
        if kw["kind"] == at:
            with env["factory"]() as s:
                caller = Caller(tenant_id=default_tenant_id(s), is_admin=True)
                job = jobs_service.cancel(s, str(job_id), caller, keep_partial_artifacts=keep)
                assert job.cancel_requested and job.status == "running"
                s.commit()
        return art_id

    monkeypatch.setattr(JobStore, "add_artifact", add_then_cancel)
    return keys


@pytest.mark.parametrize("keep", [False, True])
def test_cancel_during_package_deletes_partial_artifacts_unless_kept(
    runner_env: dict[str, Any], db_session: Session, monkeypatch: pytest.MonkeyPatch, keep: bool
) -> None:
    env = runner_env
    keys = cancel_after_first_artifact(env, db_session, monkeypatch, keep=keep)
    job_id = add_job(db_session, spec(env["model_id"], quantization={"method": "none"}))
    assert run(env, job_id) == "canceled"
    job = fresh(db_session, job_id)
    assert job.status == "canceled" and job.stage == "package"
    assert job.keep_partial_artifacts is keep
    arts = db_session.scalars(select(Artifact).where(Artifact.job_id == job_id)).all()
    store: LocalStore = env["store"]
    assert keys  # the model archive and the ONNX files were registered before the stop
    if keep:
        assert sorted(a.storage_key for a in arts) == sorted(keys)
        assert {a.kind for a in arts} >= {"model"} and "report" not in {a.kind for a in arts}
        assert all(store.exists(k) for k in keys)
    else:
        assert arts == []
        assert not any(store.exists(k) for k in keys)
    assert store.exists(env["model"].storage_key)  # the uploaded model is not the job's


def test_discard_keeps_objects_other_rows_still_name(
    runner_env: dict[str, Any], db_session: Session
) -> None:
    env = runner_env
    mine = add_job(db_session, spec(env["model_id"]), status="running")
    other = add_job(db_session, spec(env["model_id"]), status="succeeded")

    def art(job_id: uuid.UUID, kind: str, key: str) -> Artifact:
        return Artifact(id=uuid.uuid4(), job_id=job_id, kind=kind, filename=kind,
                        media_type="application/octet-stream", size_bytes=1, sha256=key[-64:],
                        storage_key=key)  # fmt: skip

    shared, alone = "sha256/aa/" + "a" * 64, "sha256/bb/" + "b" * 64
    db_session.add_all([
        art(mine, "model", shared), art(mine, "report", alone),
        art(mine, "model_onnx", env["model"].storage_key),  # same bytes as the upload
        art(other, "model", shared),
    ])  # fmt: skip
    db_session.flush()
    assert JobStore(env["factory"]).discard_artifacts(mine) == [alone]
    left = db_session.scalars(select(Artifact.job_id)).all()
    assert mine not in left and other in left


def test_cancel_flag_is_recorded_by_the_api_service(db_session: Session) -> None:
    job_id = add_job(db_session, {"model": "minilm-l6"}, status="running")
    caller = Caller(tenant_id=default_tenant_id(db_session), is_admin=False)
    jobs_service.cancel(db_session, str(job_id), caller)
    job = fresh(db_session, job_id)
    assert job.cancel_requested and not job.keep_partial_artifacts
    # asked again, this time keeping: the flag is set even though cancel was already requested
    jobs_service.cancel(db_session, str(job_id), caller, keep_partial_artifacts=True)
    assert fresh(db_session, job_id).keep_partial_artifacts


@pytest.mark.parametrize("keep", [False, True])
def test_cancel_after_the_last_progress_write_still_ends_canceled(
    runner_env: dict[str, Any], db_session: Session, monkeypatch: pytest.MonkeyPatch, keep: bool
) -> None:
    """The report is the job's last artifact, registered after the package stage's last
    progress write: a cancel then (before the terminal commit) ends the job canceled, with
    no artifacts left unless the cancel kept them, and a job.canceled webhook row."""
    from app.db.models import WebhookDelivery

    env = runner_env
    keys = cancel_after_first_artifact(env, db_session, monkeypatch, keep=keep, at="report")
    job_id = add_job(
        db_session, spec(env["model_id"], quantization={"method": "none"}),
        webhook_url="https://hooks.example.com/x",
    )  # fmt: skip
    assert run(env, job_id) == "canceled"
    job = fresh(db_session, job_id)
    assert job.status == "canceled" and job.finished_at is not None and job.progress < 1.0
    assert job.error_message == "canceled while the job was finishing"
    assert set(job.metrics["stage_seconds"]) >= {"package"}
    arts = db_session.scalars(select(Artifact).where(Artifact.job_id == job_id)).all()
    store: LocalStore = env["store"]
    assert len(keys) >= 4  # model, both ONNX files, the report files: all registered
    if keep:
        assert sorted(a.storage_key for a in arts) == sorted(keys)
        assert all(store.exists(k) for k in keys)
    else:
        assert arts == []
        assert not any(store.exists(k) for k in keys)
    assert store.exists(env["model"].storage_key)
    events = [d.event_type for d in db_session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.job_id == job_id))]  # fmt: skip
    assert events == ["job.canceled"]


def test_cancel_after_the_terminal_commit_is_a_conflict(
    runner_env: dict[str, Any], db_session: Session
) -> None:
    """The other side of the race: a job that committed succeeded is not canceled (409)."""
    from app.errors import Conflict

    env = runner_env
    job_id = add_job(db_session, spec(env["model_id"], quantization={"method": "none"}))
    assert run(env, job_id) == "succeeded"
    caller = Caller(tenant_id=default_tenant_id(db_session), is_admin=True)
    with pytest.raises(Conflict):
        jobs_service.cancel(db_session, str(job_id), caller)
    assert fresh(db_session, job_id).status == "succeeded"
