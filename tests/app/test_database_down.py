"""PostgreSQL unreachable: the API answers 503 `database_unavailable` problems (never a 500),
/healthz still answers, /readyz says not ready, and a request whose commit is cut off keeps
nothing of what it wrote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.main import create_app
from app.settings import Settings
from tests.app.conftest import MakeClient, count_rows
from tests.conftest import _clear_caches
from tests.e2e.harness import free_port

SPEC: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {"name": "tweets"},
    "pruning": {"method": "magnitude", "sparsity": 0.5},
}
KEY = "Bearer sk_0123456789abcdef_" + "x" * 32


def unavailable(r: Any) -> dict[str, Any]:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "5"
    body: dict[str, Any] = r.json()
    assert body["code"] == "database_unavailable" and body["status"] == 503, body
    return body


@pytest.fixture
def dead_db_client(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The real app (its own engine, no session override) on a port nothing listens on."""
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    )
    monkeypatch.delenv("REDIS_URL", raising=False)
    _clear_caches()
    with TestClient(create_app(Settings()), headers={"Authorization": KEY}) as client:
        yield client
    _clear_caches()


def test_api_answers_503_when_the_database_is_unreachable(dead_db_client: TestClient) -> None:
    unavailable(dead_db_client.get("/v1/jobs"))
    unavailable(dead_db_client.post("/v1/jobs", json=SPEC))
    unavailable(dead_db_client.get("/v1/jobs/0b7e5a52-3f7e-4bb4-9c55-1b2f1c1a0001"))
    assert dead_db_client.get("/healthz").status_code == 200
    ready = dead_db_client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["code"] == "not_ready"
    assert "database" in [e["component"] for e in ready.json()["errors"]]


def test_connection_lost_at_commit_keeps_no_rows(
    make_client: MakeClient, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    # The key is checked (and cached) before the request takes a slot; warm the cache so the
    # cut-off commit below is the route's own.
    assert client.get("/v1/jobs").status_code == 200
    before = count_rows(db_session)

    seen_at_commit: list[dict[str, int]] = []

    def lost(*_: Any, **__: Any) -> None:
        db_session.flush()
        seen_at_commit.append(count_rows(db_session))
        raise sa_exc.OperationalError(
            "COMMIT", {}, ConnectionError("server closed the connection unexpectedly")
        )

    with monkeypatch.context() as m:
        m.setattr(db_session, "commit", lost)
        unavailable(client.post("/v1/jobs", json=SPEC))
    # The commit cut off was the route's, with its job written and not yet committed.
    assert [c["job"] for c in seen_at_commit] == [before["job"] + 1]
    assert count_rows(db_session) == before


def test_other_database_errors_are_still_500(
    make_client: MakeClient, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.problems import database_down

    integrity = sa_exc.IntegrityError("INSERT", {}, ValueError("duplicate key"))
    assert not database_down(integrity)
    assert database_down(sa_exc.TimeoutError("QueuePool limit reached"))
    client = make_client()

    def broken(*_: Any, **__: Any) -> None:
        raise integrity

    with monkeypatch.context() as m, pytest.raises(sa_exc.IntegrityError):
        m.setattr(db_session, "commit", broken)
        client.post("/v1/jobs", json=SPEC)
