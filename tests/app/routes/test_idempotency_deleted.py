"""Idempotency-Key after a deletion: the deleted job's, model's or data set's records go with
it, so repeating its keyed POST makes it anew (not a replay of a dead id); the tenant's
other records, and another tenant's, stay."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import IdempotencyKey, Job
from tests.app.conftest import MakeClient
from tests.factories.archives import model_files, zip_bytes
from tests.factories.tenants import make_api_key

SPEC: dict[str, Any] = {"model": "minilm-l6", "dataset": {"name": "tweets"}}
CSV = "text,label\n" + "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10))
MODEL = zip_bytes(model_files())


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def post(client: TestClient, kind: str, key: str) -> Any:
    if kind == "jobs":
        return client.post("/v1/jobs", json=SPEC, headers=keyed(key))
    if kind == "models":
        return client.post("/v1/models", files={"file": ("m.zip", MODEL)}, headers=keyed(key))
    return client.post("/v1/datasets", files={"file": ("d.csv", CSV.encode())},
                       headers=keyed(key))  # fmt: skip


def finish(db: Session, kind: str, resource_id: str) -> None:
    if kind == "jobs":  # only a finished job can be deleted
        job = db.get(Job, uuid.UUID(resource_id))
        assert job is not None
        job.status = "succeeded"
        db.commit()


def keys(db: Session) -> list[str]:
    db.expire_all()
    return sorted(db.scalars(select(IdempotencyKey.key)))


@pytest.mark.parametrize("kind", ["jobs", "models", "datasets"])
def test_a_keyed_post_repeated_after_its_resource_was_deleted_makes_it_anew(
    make_client: MakeClient, client: TestClient, db_session: Session, kind: str
) -> None:
    first = post(client, kind, "k-1")
    assert first.status_code in (201, 202), first.text
    other = post(client, kind, "k-other")  # another resource of the tenant's: its key stays
    stranger = make_client(key=make_api_key(db_session, "tenant-b"))
    theirs = post(stranger, kind, "k-1")  # the same key, another tenant's
    assert theirs.status_code in (201, 202), theirs.text
    assert keys(db_session) == ["k-1", "k-1", "k-other"]
    finish(db_session, kind, first.json()["id"])
    assert client.delete(f"/v1/{kind}/{first.json()['id']}").status_code == 204
    assert keys(db_session) == ["k-1", "k-other"]
    again = post(client, kind, "k-1")
    assert again.status_code == first.status_code, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert client.get(f"/v1/{kind}/{again.json()['id']}").status_code == 200
    replay = post(client, kind, "k-other")
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == other.json()["id"]
    assert post(stranger, kind, "k-1").json()["id"] == theirs.json()["id"]
