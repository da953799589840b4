"""Every job, model, data set and artifact belongs to one tenant: another tenant's is a 404,
exactly like an id that does not exist; an admin key sees every tenant's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import Job
from tests.app.conftest import MakeClient
from tests.factories.archives import model_files, zip_bytes
from tests.factories.jobs import make_artifact
from tests.factories.tenants import make_api_key

CSV = "text,label\n" + "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10))


@dataclass(frozen=True)
class Owned:
    """Tenant B's resources, and clients for tenant A (B's neighbour), B and an admin."""

    a: TestClient
    b: TestClient
    admin: TestClient
    model_id: str
    dataset_id: str
    job_id: str
    artifact_id: str


def not_found(r: Any, code: str) -> None:
    assert r.status_code == 404, r.text
    if r.request.method != "HEAD":
        assert r.json()["code"] == code


@pytest.fixture
def owned(make_client: MakeClient, client: TestClient, db_session: Session) -> Owned:
    b = make_client(key=make_api_key(db_session, "tenant-b"))
    admin = make_client(key=make_api_key(db_session, "operations", admin=True))
    model = b.post("/v1/models", files={"file": ("m.zip", zip_bytes(model_files()))})
    assert model.status_code == 201, model.text
    dataset = b.post("/v1/datasets", files={"file": ("d.csv", CSV.encode())})
    assert dataset.status_code == 201, dataset.text
    spec = {"model": model.json()["id"], "dataset": {"name": dataset.json()["id"]}}
    job = b.post("/v1/jobs", json=spec)
    assert job.status_code == 202, job.text
    row = db_session.get(Job, uuid.UUID(job.json()["id"]))
    assert row is not None
    art = make_artifact(db_session, row, b"weights")
    return Owned(
        a=client, b=b, admin=admin, model_id=model.json()["id"],
        dataset_id=dataset.json()["id"], job_id=job.json()["id"], artifact_id=str(art.id),
    )  # fmt: skip


def test_another_tenants_job_is_not_found(owned: Owned) -> None:
    a, job = owned.a, owned.job_id
    not_found(a.get(f"/v1/jobs/{job}"), "job_not_found")
    not_found(a.get(f"/v1/jobs/{job}/events"), "job_not_found")
    not_found(a.post(f"/v1/jobs/{job}/cancel"), "job_not_found")
    not_found(a.get(f"/v1/jobs/{job}/artifacts"), "job_not_found")
    assert a.get("/v1/jobs").json()["items"] == []
    assert owned.b.get(f"/v1/jobs/{job}").json()["status"] == "queued"  # not canceled by A
    assert [j["id"] for j in owned.b.get("/v1/jobs").json()["items"]] == [job]


def test_another_tenants_artifact_is_not_found(owned: Owned) -> None:
    url = f"/v1/artifacts/{owned.artifact_id}"
    not_found(owned.a.get(url), "artifact_not_found")
    not_found(owned.a.head(url), "artifact_not_found")
    assert owned.b.get(url).content == b"weights"


def test_another_tenants_uploads_are_not_found(owned: Owned) -> None:
    a = owned.a
    not_found(a.get(f"/v1/models/{owned.model_id}"), "model_not_found")
    not_found(a.get(f"/v1/datasets/{owned.dataset_id}"), "dataset_not_found")
    assert a.get("/v1/models").json()["items"] == []
    assert a.get("/v1/datasets").json()["items"] == []
    assert owned.b.get(f"/v1/models/{owned.model_id}").status_code == 200
    assert [d["id"] for d in owned.b.get("/v1/datasets").json()["items"]] == [owned.dataset_id]


def test_a_job_cannot_use_another_tenants_model_or_dataset(owned: Owned) -> None:
    r = owned.a.post("/v1/jobs", json={"model": owned.model_id, "dataset": {"name": "tweets"}})
    not_found(r, "model_not_found")
    assert r.json()["field"] == "model"
    r = owned.a.post("/v1/jobs", json={"model": "minilm-l6", "dataset": {"name": owned.dataset_id}})
    not_found(r, "dataset_not_found")
    # Nor can an admin: a job belongs to its submitter's tenant, and so must what it uses.
    r = owned.admin.post("/v1/jobs", json={"model": owned.model_id, "dataset": {"name": "tweets"}})
    not_found(r, "model_not_found")


def test_admin_sees_every_tenant(owned: Owned) -> None:
    admin = owned.admin
    mine = owned.a.post("/v1/jobs", json={"model": "minilm-l6", "dataset": {"name": "tweets"}})
    assert mine.status_code == 202
    listed = {j["id"] for j in admin.get("/v1/jobs").json()["items"]}
    assert {owned.job_id, mine.json()["id"]} <= listed
    assert admin.get(f"/v1/jobs/{owned.job_id}").status_code == 200
    assert admin.get(f"/v1/jobs/{owned.job_id}/events").status_code == 200
    assert len(admin.get(f"/v1/jobs/{owned.job_id}/artifacts").json()["items"]) == 1
    assert admin.get(f"/v1/artifacts/{owned.artifact_id}").content == b"weights"
    assert admin.get(f"/v1/models/{owned.model_id}").status_code == 200
    assert owned.model_id in {m["id"] for m in admin.get("/v1/models").json()["items"]}
    assert owned.dataset_id in {d["id"] for d in admin.get("/v1/datasets").json()["items"]}
    assert admin.post(f"/v1/jobs/{owned.job_id}/cancel").json()["status"] == "canceled"
    assert owned.b.get(f"/v1/jobs/{owned.job_id}").json()["status"] == "canceled"
