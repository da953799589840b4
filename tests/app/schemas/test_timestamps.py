"""Every timestamp the API returns is RFC 3339 with a zone (app.schemas.common.UtcDateTime):
jobs, events, webhook deliveries and their attempts, signing secrets, uploads, artifacts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.session import get_sessionmaker
from app.main import create_app
from app.schemas.common import UtcDateTime
from app.services.api_keys import IssuedKey
from app.services.webhook_dispatch import dispatch_due_webhooks
from app.settings import Settings
from tests.app.conftest import MakeClient
from tests.app.routes.test_jobs import spec
from tests.conftest import _clear_caches, alembic_config
from tests.factories.archives import model_files, zip_bytes
from tests.factories.jobs import make_artifact, make_job
from tests.factories.tenants import auth, make_api_key

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
TIMESTAMP_KEYS = re.compile(r"(_at|^timestamp)$")


def timestamps(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, value) of every non-null *_at / timestamp value in a JSON document."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            if TIMESTAMP_KEYS.search(key) and value is not None:
                out.append((where, value))
            else:
                out += timestamps(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += timestamps(value, f"{path}[{i}]")
    return out


def assert_zoned(body: Any, at_least: int) -> None:
    found = timestamps(body)
    assert len(found) >= at_least, found
    for where, value in found:
        assert isinstance(value, str) and RFC3339.match(value), (where, value)
        assert datetime.fromisoformat(value).utcoffset() is not None, (where, value)


class _Stamped(BaseModel):
    at: UtcDateTime
    maybe: UtcDateTime | None = None


def test_a_naive_value_is_taken_as_utc_and_written_with_a_zone() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5, 678000)
    out = _Stamped(at=naive, maybe=naive.replace(tzinfo=UTC) + timedelta(hours=1))
    assert out.at == naive.replace(tzinfo=UTC)
    dumped = out.model_dump(mode="json")
    assert dumped == {"at": "2026-01-02T03:04:05.678000Z", "maybe": "2026-01-02T04:04:05.678000Z"}
    assert (
        _Stamped(at=naive).model_dump_json() == '{"at":"2026-01-02T03:04:05.678000Z","maybe":null}'
    )


def test_an_aware_value_keeps_its_instant_and_is_written_in_utc() -> None:
    local = datetime(2026, 1, 2, 4, 0, tzinfo=UTC).astimezone()  # the local zone, whatever it is
    plus_two = datetime.fromisoformat("2026-01-02T05:00:00+02:00")
    assert _Stamped(at=plus_two).model_dump(mode="json")["at"] == "2026-01-02T03:00:00Z"
    assert _Stamped(at=local).at == local
    assert _Stamped(at="2026-01-02T03:00:00").at.tzinfo is UTC  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        _Stamped(at="yesterday")  # type: ignore[arg-type]


def test_openapi_documents_date_time(make_client: MakeClient) -> None:
    schemas = make_client().get("/openapi.json").json()["components"]["schemas"]
    created_at = schemas["JobEventOut"]["properties"]["created_at"]
    assert {k: created_at[k] for k in ("type", "format", "title")} == {
        "type": "string", "format": "date-time", "title": "Created At",
    }  # fmt: skip


def test_every_response_timestamp_has_a_zone(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey
) -> None:
    client = make_client(webhook_allow='["loopback"]')
    job_id = client.post("/v1/jobs", json=spec(webhook_url="http://127.0.0.1:9/h")).json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert_zoned(job, 3)  # created, finished, updated
    assert_zoned(client.get("/v1/jobs").json(), 3)
    events = client.get(f"/v1/jobs/{job_id}/events").json()
    assert events["items"]
    assert_zoned(events, len(events["items"]))

    transport = httpx.MockTransport(lambda _r: httpx.Response(503))
    with httpx.Client(transport=transport) as http:
        dispatch_due_webhooks(db_session, Settings(webhook_allow=["loopback"]), http, utcnow())
    deliveries = client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json()
    [delivery] = deliveries["items"]
    assert delivery["attempt_log"]
    # created, updated, next attempt, the attempt, the payload's timestamp and finished_at
    assert_zoned(deliveries, 6)

    created = client.post("/v1/webhook-secrets").json()
    assert_zoned(created, 1)
    rotated = client.post("/v1/webhook-secrets").json()
    assert_zoned(rotated, 2)  # created, previous_expire_at
    assert_zoned(client.get("/v1/webhook-secrets").json(), 3)  # two created, one expires

    model = client.post("/v1/models", files={"file": ("m.zip", zip_bytes(model_files()))})
    assert model.status_code == 201, model.text
    assert_zoned(model.json(), 1)
    assert_zoned(client.get("/v1/models").json(), 1)
    dataset = client.post(
        "/v1/datasets", files={"file": ("d.csv", b"text,label\ngood,1\nbad,0\n" * 8)}
    )
    assert dataset.status_code == 201, dataset.text
    assert_zoned(dataset.json(), 1)
    assert_zoned(client.get("/v1/datasets").json(), 1)

    artifact = make_artifact(db_session, make_job(db_session, api_key.tenant_id), b"x" * 64)
    assert_zoned(client.get(f"/v1/jobs/{artifact.job_id}/artifacts").json(), 1)


def test_the_embedded_sqlite_default_answers_with_zones_too(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite hands timestamps back naive: the schemas still answer with a zone."""
    from alembic import command

    url = f"sqlite:///{settings_env / 'scalpel.db'}"
    for name in ("REDIS_URL", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("WEBHOOK_ALLOW", '["loopback"]')
    _clear_caches()
    command.upgrade(alembic_config(url), "head")
    with get_sessionmaker()() as session:
        key = make_api_key(session, "tenant-sqlite")
    with TestClient(create_app(Settings()), headers=auth(key)) as client:
        r = client.post("/v1/jobs", json=spec(webhook_url="http://127.0.0.1:9/h"))
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        assert_zoned(client.get(f"/v1/jobs/{job_id}").json(), 3)
        assert_zoned(client.get(f"/v1/jobs/{job_id}/events").json(), 1)
        deliveries = client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json()
        assert_zoned(deliveries, 3)  # created, updated, next attempt (and the payload's)
        client.post("/v1/webhook-secrets")
        assert_zoned(client.post("/v1/webhook-secrets").json(), 2)
        assert_zoned(client.get("/v1/webhook-secrets").json(), 3)
