"""run_job with the S3 backend: the worker reads the upload from, and writes every artifact
to, a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Artifact
from app.settings import Settings
from app.storage_s3 import S3Store
from app.stores import get_store
from tests.factories import s3 as s3_fixtures
from tests.factories.tenants import default_tenant_id
from tests.worker.test_runner import add_job, fresh, make_files, spec
from worker.runner import run_job

s3_endpoint = s3_fixtures.s3_endpoint
s3_env = s3_fixtures.s3_env


def test_job_writes_its_artifacts_to_s3(
    tmp_path: Path, db_session: Session, s3_env: dict[str, str]
) -> None:
    local, local_store, model = make_files(tmp_path)
    settings = Settings(**{**local.model_dump(), **s3_env})
    store = get_store(settings)
    assert isinstance(store, S3Store)
    store.put_file(local_store.local_path(model.storage_key))  # the upload, in the bucket
    local_store.delete(model.storage_key)
    model.tenant_id = default_tenant_id(db_session)
    db_session.add(model)
    db_session.flush()

    def factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    job_id = add_job(db_session, spec(model.id))
    status = run_job(
        job_id, session_factory=factory, settings=settings, reporter_interval_s=0.0,
        latency_iters=(1, 1),
    )  # fmt: skip
    assert status == "succeeded", fresh(db_session, job_id).error_message
    arts = {
        a.kind: a for a in db_session.scalars(select(Artifact).where(Artifact.job_id == job_id))
    }
    assert {"model", "report", "model_onnx"} <= set(arts)
    fresh_store = S3Store.from_settings(settings.model_copy(update={"storage_dir": tmp_path / "c"}))
    for a in arts.values():
        assert fresh_store.exists(a.storage_key)
        data = fresh_store.local_path(a.storage_key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == a.sha256 and len(data) == a.size_bytes
    report: dict[str, Any] = json.loads(
        fresh_store.local_path(arts["report"].storage_key).read_text()
    )
    assert report["spec"]["model"] == str(model.id)
    assert {"torch", "transformers", "scalpel"} <= set(report["versions"])
