"""Issue 18: deletions against what runs at the same time, on real PostgreSQL with committed
rows and two connections. A model deletion waits for a submission that holds the model's row
(FOR SHARE) and then sees its job (409); a submission that comes while a deletion holds the
row waits and then finds no model; of two deletions of one job the second finds none."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from app.db.models import Job, Tenant, UploadedModel
from app.errors import ApiError
from app.repositories import jobs as jobs_repo
from app.repositories import uploads as uploads_repo
from app.schemas.job_spec import JobSpec
from app.services import deletion
from app.services import jobs as jobs_service
from app.services import webhooks as webhooks_service
from app.settings import Settings
from app.tenancy import Caller
from tests.factories.archives import bert_config
from tests.factories.webhooks import make_delivery

WAIT_S = 0.5


@pytest.fixture
def committed(pg_engine: Engine) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    """A tenant and its model, committed (other connections see them); removed after."""
    tenant_id, model_id = uuid.uuid4(), uuid.uuid4()
    with Session(pg_engine) as s:
        s.add(Tenant(id=tenant_id, name=f"race-{tenant_id.hex[:8]}"))
        s.flush()
        s.add(UploadedModel(
            id=model_id, tenant_id=tenant_id, name="m", filename="m.zip", archive_format="zip",
            size_bytes=1, sha256="0" * 64, storage_key=f"sha256/00/00/{'0' * 64}",
            architecture="BertModel", num_labels=None, num_parameters=1, config=bert_config(),
        ))  # fmt: skip
        s.commit()
    yield tenant_id, model_id
    with Session(pg_engine) as s:
        s.execute(delete(Job).where(Job.tenant_id == tenant_id))
        s.execute(delete(UploadedModel).where(UploadedModel.tenant_id == tenant_id))
        s.execute(delete(Tenant).where(Tenant.id == tenant_id))
        s.commit()


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except ApiError as exc:
            out["error"] = exc.code

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def settings(tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True, exist_ok=True)
    (data / "sst2" / "train.tsv").write_text("sentence\tlabel\ngood\t1\n")
    return Settings(storage_dir=tmp_path / "store", work_dir=tmp_path / "work", data_dir=data)


def test_a_deletion_waits_for_a_submission_in_flight_then_sees_its_job(
    pg_engine: Engine, committed: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    tenant_id, model_id = committed
    submission = Session(pg_engine)
    try:
        spec = JobSpec.model_validate({"model": str(model_id), "dataset": {"name": "sst2"}})
        job_id = jobs_service.submit(submission, spec, settings(tmp_path), Caller(tenant_id)).id

        def delete_model() -> None:
            with Session(pg_engine) as s:
                deletion.delete_model(s, settings(tmp_path), str(model_id), Caller(tenant_id))
                s.commit()

        t, out = in_thread(delete_model)
        t.join(WAIT_S)
        assert t.is_alive(), out  # waiting for the submission's lock
        submission.commit()
        t.join(10)
        assert out == {"error": "model_in_use"}
    finally:
        submission.close()
    with Session(pg_engine) as s:
        assert s.get(UploadedModel, model_id) is not None
        assert s.get(Job, job_id) is not None


def test_a_submission_during_a_deletion_finds_no_model(
    pg_engine: Engine, committed: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    tenant_id, model_id = committed
    deleting = Session(pg_engine)
    try:
        deletion.delete_model(deleting, settings(tmp_path), str(model_id), Caller(tenant_id))

        def look_up() -> bool:
            with Session(pg_engine) as s:
                found = uploads_repo.get_model(s, model_id, tenant_id=tenant_id, lock="share")
                return found is not None

        t, out = in_thread(look_up)
        t.join(WAIT_S)
        assert t.is_alive(), out  # waiting for the deletion's lock
        deleting.commit()
        t.join(10)
        assert out == {"value": False}
    finally:
        deleting.close()


def test_of_two_deletions_of_a_job_the_second_finds_none(
    pg_engine: Engine, committed: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    tenant_id, _ = committed
    with Session(pg_engine) as s:
        job = jobs_repo.create_queued(s, tenant_id, {"model": "minilm-l6"}, None)
        job.status = "succeeded"
        s.commit()
        job_id = job.id
    first = Session(pg_engine)
    try:
        deletion.delete_job(first, settings(tmp_path), str(job_id), Caller(tenant_id))

        def second() -> None:
            with Session(pg_engine) as s:
                deletion.delete_job(s, settings(tmp_path), str(job_id), Caller(tenant_id))
                s.commit()

        t, out = in_thread(second)
        t.join(WAIT_S)
        assert t.is_alive(), out  # the row is locked FOR UPDATE by the first
        first.commit()
        t.join(10)
        assert out == {"error": "job_not_found"}
    finally:
        first.close()


def test_a_redelivery_during_a_deletion_waits_then_finds_none(
    pg_engine: Engine, committed: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    """The deletion holds the job's deliveries (one failed for good: the job may go) from
    its check to its commit, so a redelivery that would make one pending again waits, then
    finds it gone."""
    tenant_id, _ = committed
    with Session(pg_engine) as s:
        job = jobs_repo.create_queued(s, tenant_id, {"model": "minilm-l6"}, "http://127.0.0.1:9/")
        job.status = "failed"
        delivery = make_delivery(s, job, "http://127.0.0.1:9/")
        delivery.status, delivery.next_attempt_at = "failed", None
        s.commit()
        job_id, delivery_id = job.id, delivery.id
    first = Session(pg_engine)
    try:
        deletion.delete_job(first, settings(tmp_path), str(job_id), Caller(tenant_id))

        def redeliver() -> None:
            with Session(pg_engine) as s:
                webhooks_service.redeliver(s, str(job_id), str(delivery_id), Caller(tenant_id))
                s.commit()

        t, out = in_thread(redeliver)
        t.join(WAIT_S)
        assert t.is_alive(), out  # the delivery is locked by the deletion
        first.commit()
        t.join(10)
        assert out == {"error": "delivery_not_found"}
    finally:
        first.close()
    with Session(pg_engine) as s:
        assert s.get(Job, job_id) is None
