"""Event streams on a real API process (uvicorn, `python -m app serve`) and PostgreSQL: event
ids are each job's own 1, 2, 3, ... (nothing about other tenants' activity), Last-Event-ID
resumes on them, and an API key holds at most EVENTS_STREAMS_PER_KEY streams at once."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from alembic import command
from app.repositories import jobs as jobs_repo
from tests.conftest import alembic_config, create_database, drop_database
from tests.e2e.harness import base_env, create_api_key, free_port, process, wait_ready
from tests.e2e.processes import insert_job

pytestmark = pytest.mark.e2e
PER_KEY = 3
SSE = {"Accept": "text/event-stream"}


@dataclass
class Stack:
    url: str
    engine: Engine
    keys: dict[str, str]  # tenant -> key


@pytest.fixture
def api_only(tmp_path: Path) -> Iterator[Stack]:
    """The API alone (no worker: the jobs here stay queued) on a database of its own."""
    name = f"scalpel_streams_{uuid.uuid4().hex[:10]}"
    db_url = create_database(name)
    command.upgrade(alembic_config(db_url), "head")
    port = free_port()
    env = base_env(
        tmp_path, DATABASE_URL=db_url, PORT=str(port), EVENTS_POLL_INTERVAL_S="0.2",
        EVENTS_HEARTBEAT_S="0.5", EVENTS_STREAMS_PER_KEY=str(PER_KEY),
    )  # fmt: skip
    engine = create_engine(db_url)
    log = tmp_path / "api.log"
    try:
        with (
            process([sys.executable, "-m", "app", "serve"], env, log) as api,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            wait_ready(client, api, log)
            keys = {t: create_api_key(env, t) for t in ("a", "b")}
            yield Stack(f"http://127.0.0.1:{port}", engine, keys)
    finally:
        engine.dispose()
        drop_database(name)


def client(stack: Stack, tenant: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.keys[tenant]}"},
        timeout=httpx.Timeout(10, read=30),
    )  # fmt: skip


def add_events(engine: Engine, job_id: uuid.UUID, n: int) -> None:
    with Session(engine) as s:
        for i in range(n):
            jobs_repo.add_event(s, job_id, kind="status", status="queued", message=f"note {i}")
        s.commit()


def test_event_ids_are_per_job_and_resume_on_them(api_only: Stack) -> None:
    mine = insert_job(api_only.engine, {"model": "minilm-l6"}, "a")
    theirs = insert_job(api_only.engine, {"model": "minilm-l6"}, "b")
    for _ in range(3):  # interleaved: a global sequence would leave gaps in each
        add_events(api_only.engine, mine, 1)
        add_events(api_only.engine, theirs, 2)
    with client(api_only, "a") as a, client(api_only, "b") as b:
        mine_ids = [e["id"] for e in a.get(f"/v1/jobs/{mine}/events").json()["items"]]
        theirs_ids = [e["id"] for e in b.get(f"/v1/jobs/{theirs}/events").json()["items"]]
        assert mine_ids == [1, 2, 3, 4]  # queued, then three notes
        assert theirs_ids == [1, 2, 3, 4, 5, 6, 7]
        page = a.get(f"/v1/jobs/{mine}/events", params={"after": 2, "limit": 1}).json()
        assert [e["id"] for e in page["items"]] == [3] and page["next_after"] == 3
        # SSE resume on the job's own numbers: only what came after 5
        with b.stream(
            "GET", f"/v1/jobs/{theirs}/events", headers={**SSE, "Last-Event-ID": "5"}
        ) as r:
            assert r.status_code == 200
            ids: list[str] = []
            for line in r.iter_lines():
                if line.startswith("id: "):
                    ids.append(line[4:])
                if len(ids) == 2 or line.startswith(": heartbeat"):
                    break
        assert ids == ["6", "7"]


def open_stream(stack: Stack, tenant: str, job_id: uuid.UUID, exits: ExitStack) -> httpx.Response:
    """A stream kept open (its connection too) until `exits` closes."""
    c = exits.enter_context(client(stack, tenant))
    return exits.enter_context(c.stream("GET", f"/v1/jobs/{job_id}/events", headers=SSE))


def test_streams_per_key_are_capped(api_only: Stack) -> None:
    job_a = insert_job(api_only.engine, {"model": "minilm-l6"}, "a")
    job_b = insert_job(api_only.engine, {"model": "minilm-l6"}, "b")
    with ExitStack() as held:
        first = ExitStack()
        streams = [open_stream(api_only, "a", job_a, first)]
        streams += [open_stream(api_only, "a", job_a, held) for _ in range(PER_KEY - 1)]
        assert [r.status_code for r in streams] == [200] * PER_KEY
        with client(api_only, "a") as a:
            over = a.get(f"/v1/jobs/{job_a}/events", headers=SSE)
            assert over.status_code == 429, over.text
            assert over.headers["content-type"].startswith("application/problem+json")
            assert over.json()["code"] == "too_many_streams"
            assert int(over.headers["retry-after"]) > 0
            # the JSON page is not a stream: still served
            assert a.get(f"/v1/jobs/{job_a}/events").status_code == 200
        # another key is not affected
        other = open_stream(api_only, "b", job_b, held)
        assert other.status_code == 200
        # a stream the client closes gives its slot back
        first.close()
        deadline = time.monotonic() + 15
        while True:
            with (
                client(api_only, "a") as a,
                a.stream("GET", f"/v1/jobs/{job_a}/events", headers=SSE) as again,
            ):
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the closed stream's slot never came back"
            time.sleep(0.3)
