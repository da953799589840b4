"""Idempotency-Key on POST /v1/jobs and the uploads: a retry gets the first response again
and makes nothing new; the same key with a different request is a 422."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import IdempotencyKey
from app.repositories import idempotency as idempotency_repo
from tests.app.conftest import MakeClient, count_rows
from tests.factories.archives import model_files, zip_bytes
from tests.factories.tenants import make_api_key

SPEC: dict[str, Any] = {"model": "minilm-l6", "dataset": {"name": "tweets"}}
CSV = "text,label\n" + "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10))


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def stored_keys(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(IdempotencyKey)) or 0


def reused(r: Any) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "idempotency_key_reused"


def test_retry_replays_the_first_job(client: TestClient, db_session: Session) -> None:
    first = client.post("/v1/jobs", json=SPEC, headers=keyed("job-1"))
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    before = count_rows(db_session)
    # The same request, its keys in another order: the same JSON.
    again = client.post(
        "/v1/jobs", json={"dataset": {"name": "tweets"}, "model": "minilm-l6"},
        headers=keyed("job-1"),
    )  # fmt: skip
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert count_rows(db_session) == before
    assert count_rows(db_session)["job"] == 1
    assert stored_keys(db_session) == 1


def test_same_key_with_another_body_is_422(client: TestClient, db_session: Session) -> None:
    assert client.post("/v1/jobs", json=SPEC, headers=keyed("k")).status_code == 202
    other = {**SPEC, "pruning": {"method": "magnitude", "sparsity": 0.7}}
    reused(client.post("/v1/jobs", json=other, headers=keyed("k")))
    # ... or on another endpoint.
    reused(client.post("/v1/datasets", files={"file": ("d.csv", CSV.encode())},
                       headers=keyed("k")))  # fmt: skip
    assert count_rows(db_session)["job"] == 1
    assert count_rows(db_session)["dataset"] == 0


def test_without_a_key_every_post_is_new(client: TestClient, db_session: Session) -> None:
    ids = {client.post("/v1/jobs", json=SPEC).json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert stored_keys(db_session) == 0


def test_keys_are_per_tenant(
    make_client: MakeClient, client: TestClient, db_session: Session
) -> None:
    other = make_client(key=make_api_key(db_session, "tenant-b"))
    a = client.post("/v1/jobs", json=SPEC, headers=keyed("shared"))
    b = other.post("/v1/jobs", json=SPEC, headers=keyed("shared"))
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers


def test_a_failed_request_does_not_use_up_its_key(client: TestClient, db_session: Session) -> None:
    r = client.post("/v1/jobs", json={**SPEC, "model": "no-such-model"}, headers=keyed("k2"))
    assert r.status_code == 404
    assert stored_keys(db_session) == 0
    ok = client.post("/v1/jobs", json=SPEC, headers=keyed("k2"))
    assert ok.status_code == 202 and "idempotent-replayed" not in ok.headers


@pytest.mark.parametrize(("key", "status"), [("", 422), ("x" * 256, 422), ("x" * 255, 202)])
def test_key_length(client: TestClient, key: str, status: int) -> None:
    r = client.post("/v1/jobs", json=SPEC, headers=keyed(key))
    assert r.status_code == status, r.text
    if status == 422:
        assert r.json()["code"] == "validation_error"
        assert r.json()["field"] == "idempotency-key"


def test_model_upload_replay(client: TestClient, db_session: Session) -> None:
    data = zip_bytes(model_files())
    first = client.post("/v1/models", files={"file": ("m.zip", data)}, data={"name": "m"},
                        headers=keyed("up-1"))  # fmt: skip
    assert first.status_code == 201, first.text
    again = client.post("/v1/models", files={"file": ("m.zip", data)}, data={"name": "m"},
                        headers=keyed("up-1"))  # fmt: skip
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert count_rows(db_session)["model"] == 1
    other_file = zip_bytes(model_files(extra={"README.md": b"another file"}))
    reused(client.post("/v1/models", files={"file": ("m.zip", other_file)}, data={"name": "m"},
                       headers=keyed("up-1")))  # fmt: skip
    reused(client.post("/v1/models", files={"file": ("m.zip", data)}, data={"name": "renamed"},
                       headers=keyed("up-1")))  # fmt: skip
    assert count_rows(db_session)["model"] == 1


def test_dataset_upload_replay(client: TestClient, db_session: Session) -> None:
    def post(csv: str, **form: str) -> Any:
        return client.post("/v1/datasets", files={"file": ("d.csv", csv.encode())}, data=form,
                           headers=keyed("ds-1"))  # fmt: skip

    first = post(CSV)
    assert first.status_code == 201, first.text
    again = post(CSV)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    reused(post(CSV + "one more,pos\n"))
    reused(post(CSV, label_column="text"))
    assert count_rows(db_session)["dataset"] == 1


def test_losing_the_race_replays_the_winner(
    client: TestClient, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent request committed the key between our look-up and our insert: the
    unique constraint refuses our claim, and we answer with the winner's response."""
    first = client.post("/v1/jobs", json=SPEC, headers=keyed("race"))
    real_get = idempotency_repo.get
    calls: list[str] = []

    def miss_once(session: Session, tenant_id: Any, key: str) -> IdempotencyKey | None:
        calls.append(key)
        return None if len(calls) == 1 else real_get(session, tenant_id, key)

    monkeypatch.setattr(idempotency_repo, "get", miss_once)
    again = client.post("/v1/jobs", json=SPEC, headers=keyed("race"))
    assert calls == ["race", "race"]
    assert again.status_code == 202, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert count_rows(db_session)["job"] == 1
