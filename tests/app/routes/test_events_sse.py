"""GET /v1/jobs/{id}/events with Accept: text/event-stream, on the real test database."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job
from app.deps import session_factory
from app.repositories import jobs as jobs_repo
from app.services.api_keys import IssuedKey
from tests.app.conftest import MakeClient
from tests.factories.jobs import make_job
from tests.factories.tenants import auth, make_api_key

SSE = {"Accept": "text/event-stream"}


def parse(body: str) -> list[dict[str, Any]]:
    """Each frame as {"id", "event", "data", "comment"} (absent fields omitted)."""
    frames = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        frame: dict[str, Any] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                frame["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(": ")
            frame[name] = json.loads(value) if name == "data" else value
        frames.append(frame)
    return frames


@pytest.fixture
def sse_client(make_client: MakeClient, db_session: Session) -> Callable[..., TestClient]:
    """A client whose stream polls open short sessions on the test's connection."""

    def factory() -> Session:
        return Session(
            bind=db_session.bind, join_transaction_mode="create_savepoint", expire_on_commit=False
        )

    def _make(**env: Any) -> TestClient:
        env.setdefault("events_poll_interval_s", "0.05")
        client = make_client(**env)
        client.app.dependency_overrides[session_factory] = lambda: factory  # type: ignore[attr-defined]
        return client

    return _make


def finished_job(session: Session, tenant_id: Any) -> Job:
    job = make_job(session, tenant_id)
    job.status = "running"
    job.started_at = utcnow()
    jobs_repo.add_event(session, job.id, kind="status", status="running")
    jobs_repo.add_event(session, job.id, kind="stage", message="prune")
    job.status = "succeeded"
    job.progress = 1.0
    job.finished_at = utcnow()
    jobs_repo.add_event(session, job.id, kind="status", status="succeeded")
    session.commit()
    return job


def test_stream_sends_every_event_then_end(
    sse_client: Callable[..., TestClient], db_session: Session, api_key: IssuedKey
) -> None:
    job = finished_job(db_session, api_key.tenant_id)
    r = sse_client().get(f"/v1/jobs/{job.id}/events", headers=SSE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    frames = [f for f in parse(r.text) if "event" in f]
    assert [f["event"] for f in frames] == ["status", "status", "stage", "status", "end"]
    ids = [int(f["id"]) for f in frames[:-1]]
    assert ids == sorted(ids) and [f["data"]["id"] for f in frames[:-1]] == ids
    assert frames[0]["data"]["status"] == "queued"
    assert "id" not in frames[-1]
    end = frames[-1]["data"]
    assert end["id"] == str(job.id) and end["status"] == "succeeded" and end["progress"] == 1.0
    # JSON polling stays the default.
    page = sse_client().get(f"/v1/jobs/{job.id}/events")
    assert page.headers["content-type"] == "application/json"
    assert [e["id"] for e in page.json()["items"]] == ids


def test_last_event_id_resumes_after_it(
    sse_client: Callable[..., TestClient], db_session: Session, api_key: IssuedKey
) -> None:
    job = finished_job(db_session, api_key.tenant_id)
    client = sse_client()
    ids = [e["id"] for e in client.get(f"/v1/jobs/{job.id}/events").json()["items"]]
    headers = {**SSE, "Last-Event-ID": str(ids[1])}
    frames = [f for f in parse(client.get(f"/v1/jobs/{job.id}/events", headers=headers).text)]
    events = [f for f in frames if "event" in f]
    assert [int(f["id"]) for f in events[:-1]] == ids[2:]
    assert events[-1]["event"] == "end"
    # the ?after= query works too
    r = client.get(f"/v1/jobs/{job.id}/events", params={"after": ids[-1]}, headers=SSE)
    assert [f["event"] for f in parse(r.text) if "event" in f] == ["end"]


def test_running_job_gets_heartbeats_and_closes_at_the_limit(
    sse_client: Callable[..., TestClient], db_session: Session, api_key: IssuedKey
) -> None:
    job = make_job(db_session, api_key.tenant_id)
    client = sse_client(events_heartbeat_s="0.1", events_stream_max_s="0.5")
    frames = parse(client.get(f"/v1/jobs/{job.id}/events", headers=SSE).text)
    events = [f for f in frames if "event" in f]
    assert [f["event"] for f in events] == ["status"]  # queued, no end: not finished
    assert any(f.get("comment") == "heartbeat" for f in frames)


def test_another_tenants_job_is_404_before_streaming(
    sse_client: Callable[..., TestClient], db_session: Session
) -> None:
    other = make_api_key(db_session, "tenant-b")
    job = finished_job(db_session, other.tenant_id)
    r = sse_client().get(f"/v1/jobs/{job.id}/events", headers=SSE)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    mine = sse_client().get(f"/v1/jobs/{job.id}/events", headers={**SSE, **auth(other)})
    assert mine.status_code == 200 and '"succeeded"' in mine.text


def test_openapi_documents_the_event_stream(sse_client: Callable[..., TestClient]) -> None:
    op = sse_client().get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/events"]["get"]
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
