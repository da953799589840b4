"""Live progress and operations on real processes: the API over HTTP streams a running job's
events (SSE) from PostgreSQL while a Celery worker on Redis runs it; /metrics counts it; both
processes log JSON lines carrying the job's id."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from alembic import command
from tests.conftest import alembic_config, create_database, drop_database
from tests.e2e.harness import (
    authorize,
    base_env,
    create_api_key,
    free_port,
    process,
    wait_ready,
    worker_args,
)
from tests.e2e.test_redis_postgres import tiny_job, upload_tiny_model

pytestmark = pytest.mark.e2e
REDIS_DB_URL = "redis://127.0.0.1:6379/12"
METRICS_TOKEN = "e2e-scrape-token"


@pytest.fixture
def live_stack(tmp_path: Path) -> Iterator[tuple[httpx.Client, list[Path]]]:
    name = f"scalpel_live_{abs(hash(tmp_path)) % 10**8}"
    db_url = create_database(name)
    command.upgrade(alembic_config(db_url), "head")
    redis.Redis.from_url(REDIS_DB_URL).flushdb()
    port = free_port()
    env = base_env(
        tmp_path, DATABASE_URL=db_url, REDIS_URL=REDIS_DB_URL, PORT=str(port),
        LOG_FORMAT="json", EVENTS_POLL_INTERVAL_S="0.2", METRICS_TOKEN=METRICS_TOKEN,
    )  # fmt: skip
    logs = [tmp_path / "api.log", tmp_path / "worker.log"]
    try:
        with (
            process([sys.executable, "-m", "app", "serve"], env, logs[0]) as api,
            process(worker_args(), env, logs[1]),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            wait_ready(client, api, logs[0])
            yield authorize(client, create_api_key(env)), logs
    finally:
        redis.Redis.from_url(REDIS_DB_URL).flushdb()
        drop_database(name)


def read_stream(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    frame: dict[str, Any] = {}
    headers = {"Accept": "text/event-stream"}
    with client.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(30, read=600)
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                if frame:
                    frames.append(frame)
                frame = {}
                continue
            name, _, value = line.partition(": ")
            frame[name] = json.loads(value) if name == "data" else value
    return frames


def json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_job_streams_live_and_shows_in_metrics_and_logs(
    live_stack: tuple[httpx.Client, list[Path]], tmp_path: Path
) -> None:
    client, logs = live_stack
    model_id = upload_tiny_model(client, tmp_path)
    r = client.post("/v1/jobs", json=tiny_job(model_id), headers={"X-Request-ID": "e2e-live"})
    assert r.status_code == 202, r.text
    assert r.headers["x-request-id"] == "e2e-live"
    job_id = r.json()["id"]

    frames = read_stream(client, job_id)
    kinds = [f.get("event") for f in frames if "event" in f]
    assert kinds[-1] == "end", kinds
    assert frames[-1]["data"]["status"] == "succeeded", frames[-1]
    assert "stage" in kinds and "status" in kinds
    stages = [f["data"]["stage"] for f in frames if f.get("event") == "stage"]
    assert "prune" in stages and "package" in stages
    assert any(
        f.get("event") == "metrics" and "dev_accuracy" in (f["data"]["data"] or {}) for f in frames
    )
    # the job's own numbers, from 1 without gaps
    ids = [int(f["id"]) for f in frames if "id" in f]
    assert ids == list(range(1, len(ids) + 1))
    # resume: only what came after
    r = client.get(
        f"/v1/jobs/{job_id}/events",
        headers={"Accept": "text/event-stream", "Last-Event-ID": str(ids[-2])},
    )
    assert [ln for ln in r.text.splitlines() if ln.startswith("id: ")] == [f"id: {ids[-1]}"]

    # every tenant's counts: not for a tenant's key, nor for anyone without the token
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(metrics.text)
        for s in fam.samples
    }
    assert values[("scalpel_jobs", (("state", "succeeded"),))] == 1
    assert values[("scalpel_job_duration_seconds_count", (("status", "succeeded"),))] == 1
    assert values[("scalpel_queue_depth", ())] == 0
    assert values[("scalpel_stage_duration_seconds_count", (("stage", "prune"),))] == 1

    api_lines = [x for x in json_lines(logs[0]) if x.get("request_id") == "e2e-live"]
    assert api_lines and all(set(x) >= {"ts", "level", "logger", "message"} for x in api_lines)
    worker_lines = [x for x in json_lines(logs[1]) if x.get("job_id") == job_id]
    assert any(x["logger"].startswith("worker.") for x in worker_lines), logs[1].read_text()[-3000:]
