"""Issue 18: DELETE /v1/jobs/{id}, /v1/models/{id} and /v1/datasets/{id}. A finished job
goes with its events, artifacts, their files and its work folders; a queued or running one
is a 409 job_active. A model or data set goes with its file unless a queued or running job
uses it (409 naming the job); finished jobs that used it keep their records. Another
tenant's id is a 404; a file another row names, or one put again since, stays."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Artifact, Job, JobEvent, UploadedModel
from app.services.api_keys import IssuedKey
from app.storage import LocalStore
from tests.app.conftest import MakeClient
from tests.app.routes.test_jobs import problem
from tests.factories.archives import model_files, zip_bytes
from tests.factories.jobs import make_artifact, make_listed_job
from tests.factories.tenants import make_api_key

CSV = "text,label\n" + "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10))


def store(tmp: Path) -> LocalStore:
    return LocalStore(tmp / "artifacts")


def finished(db: Session, key: IssuedKey, status: str = "succeeded", **kw: Any) -> Job:
    return make_listed_job(db, key.tenant_id, status=status, **kw)


def work_folders(tmp: Path, job_id: uuid.UUID) -> list[Path]:
    folders = [tmp / "work" / str(job_id) / "checkpoints", tmp / "work" / "jobs" / str(job_id)]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "state.pt").write_bytes(b"x")
    return [folders[0].parent, folders[1]]


def count(db: Session, model: Any, job_id: uuid.UUID) -> int:
    return db.scalar(select(func.count()).select_from(model).where(model.job_id == job_id)) or 0


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled"])
def test_a_finished_job_goes_with_its_artifacts_files_and_folders(
    client: TestClient, db_session: Session, api_key: IssuedKey, settings_env: Path, status: str
) -> None:
    job = finished(db_session, api_key, status)
    tag = status.encode()
    arts = [make_artifact(db_session, job, b"weights-" + tag),
            make_artifact(db_session, job, b"report-" + tag, kind="report")]  # fmt: skip
    keys, art_id, job_id = [a.storage_key for a in arts], arts[0].id, job.id
    folders = work_folders(settings_env, job.id)
    other = finished(db_session, api_key)
    kept = make_artifact(db_session, other, b"another job's")
    assert count(db_session, JobEvent, job_id) == 1
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    problem(client.get(f"/v1/jobs/{job_id}"), 404, "job_not_found")
    problem(client.get(f"/v1/artifacts/{art_id}"), 404, "artifact_not_found")
    db_session.expire_all()
    assert db_session.get(Job, job_id) is None
    assert count(db_session, JobEvent, job_id) == 0 and count(db_session, Artifact, job_id) == 0
    assert not any(store(settings_env).exists(k) for k in keys)
    assert not any(f.exists() for f in folders)
    assert store(settings_env).exists(kept.storage_key)  # another job's file stays
    assert client.get(f"/v1/jobs/{other.id}").status_code == 200
    problem(client.delete(f"/v1/jobs/{job_id}"), 404, "job_not_found")  # gone already


@pytest.mark.parametrize(
    ("status", "cancel", "says"),
    [("queued", False, "cancel it first"), ("running", False, "cancel it first"),
     ("running", True, "its cancel is under way")],
)  # fmt: skip
def test_a_queued_or_running_job_is_refused(
    client: TestClient, db_session: Session, api_key: IssuedKey, settings_env: Path,
    status: str, cancel: bool, says: str,
) -> None:  # fmt: skip
    job = make_listed_job(db_session, api_key.tenant_id, status=status)
    job.cancel_requested = cancel
    db_session.commit()
    art = make_artifact(db_session, job, b"partial")
    folders = work_folders(settings_env, job.id)
    body = problem(client.delete(f"/v1/jobs/{job.id}"), 409, "job_active")
    assert status in body["detail"] and says in body["detail"]
    assert client.get(f"/v1/jobs/{job.id}").status_code == 200
    assert store(settings_env).exists(art.storage_key)
    assert all(f.exists() for f in folders)


def test_a_file_another_row_names_stays(
    client: TestClient, db_session: Session, api_key: IssuedKey, settings_env: Path
) -> None:
    """The store is content addressed: the same bytes as another job's artifact are one
    object, and it stays while that row names it."""
    a, b = finished(db_session, api_key), finished(db_session, api_key)
    key, a_id, b_id = make_artifact(db_session, a, b"same bytes").storage_key, a.id, b.id
    make_artifact(db_session, b, b"same bytes")
    assert client.delete(f"/v1/jobs/{a_id}").status_code == 204
    assert store(settings_env).exists(key)
    assert client.delete(f"/v1/jobs/{b_id}").status_code == 204
    assert not store(settings_env).exists(key)


def test_a_file_put_again_since_its_row_stays_for_the_sweeper(
    client: TestClient, db_session: Session, api_key: IssuedKey, settings_env: Path
) -> None:
    """A put of the same bytes after the artifact's row (an upload whose row is not written
    yet) refreshed the object's time: the deletion leaves it to the sweeper."""
    job = finished(db_session, api_key)
    art = make_artifact(db_session, job, b"uploaded again")
    key, later = art.storage_key, art.created_at.timestamp() + 5
    os.utime(store(settings_env).local_path(key), (later, later))
    assert client.delete(f"/v1/jobs/{job.id}").status_code == 204
    assert store(settings_env).exists(key)


def test_another_tenants_job_is_not_found_and_an_admin_may_delete_it(
    make_client: MakeClient, client: TestClient, db_session: Session, settings_env: Path
) -> None:
    owner = make_api_key(db_session, "tenant-b")
    job = make_listed_job(db_session, owner.tenant_id, status="succeeded")
    art = make_artifact(db_session, job, b"b's weights")
    problem(client.delete(f"/v1/jobs/{job.id}"), 404, "job_not_found")
    problem(client.delete("/v1/jobs/not-an-id"), 404, "job_not_found")
    assert db_session.get(Job, job.id) is not None
    assert store(settings_env).exists(art.storage_key)
    admin = make_client(key=make_api_key(db_session, "operations", admin=True))
    job_id = job.id
    assert admin.delete(f"/v1/jobs/{job_id}").status_code == 204
    db_session.expire_all()
    assert db_session.get(Job, job_id) is None


def upload(client: TestClient, kind: str) -> dict[str, Any]:
    if kind == "models":
        r = client.post("/v1/models", files={"file": ("m.zip", zip_bytes(model_files()))})
    else:
        r = client.post("/v1/datasets", files={"file": ("d.csv", CSV.encode())})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def storage_key(db: Session, kind: str, upload_id: str) -> str:
    from app.db.models import UploadedDataset

    row = db.get(UploadedModel if kind == "models" else UploadedDataset, uuid.UUID(upload_id))
    assert row is not None
    return row.storage_key


@pytest.mark.parametrize("kind", ["models", "datasets"])
def test_an_unused_upload_goes_with_its_file(
    client: TestClient, db_session: Session, settings_env: Path, kind: str
) -> None:
    up = upload(client, kind)
    key = storage_key(db_session, kind, up["id"])
    assert client.delete(f"/v1/{kind}/{up['id']}").status_code == 204
    code = "model_not_found" if kind == "models" else "dataset_not_found"
    problem(client.get(f"/v1/{kind}/{up['id']}"), 404, code)
    assert not store(settings_env).exists(key)
    problem(client.delete(f"/v1/{kind}/{up['id']}"), 404, code)


@pytest.mark.parametrize("kind", ["models", "datasets"])
def test_an_upload_a_live_job_uses_is_refused_naming_the_job(
    client: TestClient, db_session: Session, settings_env: Path, kind: str
) -> None:
    model, dataset = upload(client, "models"), upload(client, "datasets")
    r = client.post("/v1/jobs", json={"model": model["id"], "dataset": {"name": dataset["id"]}})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    target = model if kind == "models" else dataset
    key = storage_key(db_session, kind, target["id"])
    code = "model_in_use" if kind == "models" else "dataset_in_use"
    body = problem(client.delete(f"/v1/{kind}/{target['id']}"), 409, code)
    assert job_id in body["detail"] and "queued" in body["detail"]
    assert body["errors"] == [{"job_id": job_id, "status": "queued"}]
    job = db_session.get(Job, uuid.UUID(job_id))
    assert job is not None
    job.status = "running"
    db_session.commit()
    problem(client.delete(f"/v1/{kind}/{target['id']}"), 409, code)
    assert store(settings_env).exists(key)
    job.status = "failed"
    db_session.commit()
    assert client.delete(f"/v1/{kind}/{target['id']}").status_code == 204
    assert not store(settings_env).exists(key)
    kept = client.get(f"/v1/jobs/{job_id}")  # a finished job keeps its record
    assert kept.status_code == 200
    assert kept.json()["spec"]["model"] == model["id"]


@pytest.mark.parametrize("kind", ["models", "datasets"])
def test_another_tenants_upload_is_not_found(
    make_client: MakeClient, client: TestClient, db_session: Session, settings_env: Path,
    kind: str,
) -> None:  # fmt: skip
    b = make_client(key=make_api_key(db_session, "tenant-b"))
    up = upload(b, kind)
    code = "model_not_found" if kind == "models" else "dataset_not_found"
    problem(client.delete(f"/v1/{kind}/{up['id']}"), 404, code)
    problem(client.delete(f"/v1/{kind}/not-an-id"), 404, code)
    assert b.get(f"/v1/{kind}/{up['id']}").status_code == 200
    assert store(settings_env).exists(storage_key(db_session, kind, up["id"]))


def test_the_same_file_uploaded_twice_stays_until_both_are_deleted(
    client: TestClient, db_session: Session, settings_env: Path
) -> None:
    first, second = upload(client, "datasets"), upload(client, "datasets")
    key = storage_key(db_session, "datasets", first["id"])
    assert key == storage_key(db_session, "datasets", second["id"])
    assert client.delete(f"/v1/datasets/{first['id']}").status_code == 204
    assert store(settings_env).exists(key)
    assert client.get(f"/v1/datasets/{second['id']}").status_code == 200
    assert client.delete(f"/v1/datasets/{second['id']}").status_code == 204
    assert not store(settings_env).exists(key)
