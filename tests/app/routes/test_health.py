from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.db.session import get_session
from tests.app.conftest import MakeClient


def test_healthz(make_client: MakeClient) -> None:
    r = make_client().get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_ok_on_database_and_filesystem_broker(make_client: MakeClient) -> None:
    r = make_client().get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_ok_on_redis(make_client: MakeClient) -> None:
    r = make_client(redis_url="redis://127.0.0.1:6379/15").get("/readyz")
    assert r.status_code == 200, r.text


def test_readyz_503_names_the_broker_when_it_is_down(make_client: MakeClient) -> None:
    r = make_client(redis_url="redis://127.0.0.1:1/0").get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "not_ready"
    assert [e["component"] for e in body["errors"]] == ["broker"]


def test_readyz_503_names_the_database_when_it_is_down(make_client: MakeClient) -> None:
    client = make_client()
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")

    def dead_session() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    client.app.dependency_overrides[get_session] = dead_session  # type: ignore[attr-defined]
    try:
        r = client.get("/readyz")
    finally:
        engine.dispose()
    assert r.status_code == 503
    body = r.json()
    assert body["code"] == "not_ready"
    assert [e["component"] for e in body["errors"]] == ["database"]
    assert "database" in body["detail"]
