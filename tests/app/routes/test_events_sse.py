"""GET /v1/jobs/{id}/events with Accept: text/event-stream, on the real test database."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job, JobEventSeq
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


def test_event_ids_count_each_jobs_own_events_from_one(
    sse_client: Callable[..., TestClient], db_session: Session, api_key: IssuedKey
) -> None:
    """Two tenants' jobs written in turn: each job's ids are 1, 2, 3, ... (a global sequence
    would show the gaps other tenants' events leave), in the JSON page and on the stream."""
    other = make_api_key(db_session, "tenant-b")
    mine = make_job(db_session, api_key.tenant_id)
    theirs = make_job(db_session, other.tenant_id)
    for i in range(3):
        jobs_repo.add_event(db_session, mine.id, kind="stage", message=f"mine {i}")
        jobs_repo.add_event(db_session, theirs.id, kind="stage", message=f"theirs {i}")
        jobs_repo.add_event(db_session, theirs.id, kind="stage", message=f"theirs {i}b")
    mine.status = "canceled"
    mine.finished_at = utcnow()
    jobs_repo.add_event(db_session, mine.id, kind="status", status="canceled")
    db_session.commit()
    client = sse_client()
    page = client.get(f"/v1/jobs/{mine.id}/events").json()
    assert [e["id"] for e in page["items"]] == [1, 2, 3, 4, 5]
    assert [e["message"] for e in page["items"][1:4]] == ["mine 0", "mine 1", "mine 2"]
    theirs_page = client.get(f"/v1/jobs/{theirs.id}/events", headers=auth(other)).json()
    assert [e["id"] for e in theirs_page["items"]] == [1, 2, 3, 4, 5, 6, 7]
    frames = [f for f in parse(client.get(f"/v1/jobs/{mine.id}/events", headers=SSE).text)
              if "event" in f]  # fmt: skip
    assert [f.get("id") for f in frames] == ["1", "2", "3", "4", "5", None]
    # resume after 3 on the job's own numbers; ?after= and a JSON page with a limit agree
    resumed = client.get(f"/v1/jobs/{mine.id}/events", headers={**SSE, "Last-Event-ID": "3"})
    assert [f.get("id") for f in parse(resumed.text) if "event" in f] == ["4", "5", None]
    part = client.get(f"/v1/jobs/{mine.id}/events", params={"after": 1, "limit": 2}).json()
    assert [e["id"] for e in part["items"]] == [2, 3] and part["next_after"] == 3


def test_the_worker_numbers_its_events_after_the_apis(
    db_session: Session, api_key: IssuedKey
) -> None:
    """The API (queued), the worker (claim, stage, progress, metrics) and the reaper write
    one job's events through different code; the numbers stay dense and in order."""
    from app.repositories import recovery
    from worker.job_store import JobStore

    job = make_job(db_session, api_key.tenant_id)
    db_session.commit()

    def factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    store = JobStore(factory)
    assert store.claim(job.id, "w:1", max_attempts=3).status == "running"
    store.set_stage(job.id, "load", 0.0)
    store.set_progress(job.id, "load", 0.1)
    store.merge_metrics(job.id, {"x": 1}, stage="load")
    store.add_metrics_event(job.id, {"y": 2}, stage="load")
    db_session.expire_all()
    row = db_session.get(Job, job.id)
    assert row is not None
    recovery.requeue(db_session, row, "lost")
    db_session.flush()
    got = [(e.seq, e.kind) for e in jobs_repo.events_after(db_session, job.id, None, 100)]
    assert got == [(1, "status"), (2, "status"), (3, "stage"), (4, "progress"), (5, "metrics"),
                   (6, "metrics"), (7, "status")]  # fmt: skip
    counter = db_session.get(JobEventSeq, job.id)
    assert counter is not None and counter.last_seq == 7


def test_one_stream_too_many_for_a_key_is_a_429(
    sse_client: Callable[..., TestClient], db_session: Session, api_key: IssuedKey
) -> None:
    """A key already holding events_streams_per_key streams (taken here as open streams take
    them) gets a 429 too_many_streams with Retry-After; another key still gets its stream;
    a stream that ends gives its slot back."""
    from app.services.stream_slots import slots_for

    other = make_api_key(db_session, "tenant-b")
    job = finished_job(db_session, api_key.tenant_id)
    theirs = finished_job(db_session, other.tenant_id)
    client = sse_client(events_streams_per_key="2")
    app = client.app  # type: ignore[attr-defined]
    slots = slots_for(app, app.state.settings)
    held = [slots.take(api_key.api_key.prefix) for _ in range(2)]
    assert all(held)
    r = client.get(f"/v1/jobs/{job.id}/events", headers=SSE)
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "too_many_streams" and int(r.headers["retry-after"]) >= 1
    assert client.get(f"/v1/jobs/{job.id}/events").status_code == 200  # JSON: not a stream
    # the same key as X-API-Key is the same key
    r = client.get(f"/v1/jobs/{job.id}/events",
                   headers={**SSE, "Authorization": "", "X-API-Key": api_key.token})  # fmt: skip
    assert r.status_code == 429
    ok = client.get(f"/v1/jobs/{theirs.id}/events", headers={**SSE, **auth(other)})
    assert ok.status_code == 200 and "event: end" in ok.text
    assert slots.held(other.api_key.prefix) == 0  # its stream ended: slot back
    release = held.pop()
    assert release is not None
    release()
    done = client.get(f"/v1/jobs/{job.id}/events", headers=SSE)
    assert done.status_code == 200 and "event: end" in done.text
    assert slots.held(api_key.api_key.prefix) == 1
    # a 404 takes no slot
    assert client.get(f"/v1/jobs/{theirs.id}/events", headers=SSE).status_code == 404
    assert slots.held(api_key.api_key.prefix) == 1
