"""/metrics: Prometheus text read from the registry rows (and Redis) on every scrape."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.deps import session_factory
from app.services.api_keys import IssuedKey
from tests.app.conftest import MakeClient
from tests.factories.jobs import make_job

REDIS_URL = "redis://127.0.0.1:6379/15"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metrics_client(make_client: MakeClient, db_session: Session, **env: str) -> TestClient:
    client = make_client(key=None, **env)
    client.app.dependency_overrides[session_factory] = lambda: (  # type: ignore[attr-defined]
        lambda: Session(bind=db_session.bind, join_transaction_mode="create_savepoint")
    )
    return client


def test_metrics_reflect_the_registry(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey
) -> None:
    tenant = api_key.tenant_id
    make_job(db_session, tenant)
    make_job(db_session, tenant)
    running = make_job(db_session, tenant)
    running.status = "running"
    running.started_at = utcnow() - timedelta(hours=1)
    running.heartbeat_at = utcnow() - timedelta(minutes=30)  # stale (60 s)
    done = make_job(db_session, tenant)
    done.status = "succeeded"
    done.started_at = utcnow() - timedelta(seconds=400)
    done.finished_at = utcnow()
    done.metrics = {"stage_seconds": {"prune": 12.5, "recover": 200.0}}
    db_session.commit()

    r = metrics_client(make_client, db_session).get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got[("scalpel_jobs", (("state", "queued"),))] == 2
    assert got[("scalpel_jobs", (("state", "running"),))] == 1
    assert got[("scalpel_jobs", (("state", "succeeded"),))] == 1
    assert got[("scalpel_jobs", (("state", "failed"),))] == 0
    job_le = (("le", "300.0"), ("status", "succeeded"))
    assert got[("scalpel_job_duration_seconds_bucket", job_le)] == 0
    job_le = (("le", "900.0"), ("status", "succeeded"))
    assert got[("scalpel_job_duration_seconds_bucket", job_le)] == 1
    assert got[("scalpel_job_duration_seconds_count", (("status", "succeeded"),))] == 1
    assert got[("scalpel_stage_duration_seconds_sum", (("stage", "prune"),))] == 12.5
    assert got[("scalpel_stage_duration_seconds_count", (("stage", "recover"),))] == 1
    assert got[("scalpel_running_jobs_stale_heartbeat", ())] == 1
    assert 1790 <= got[("scalpel_worker_heartbeat_age_seconds", ())] <= 1900
    assert ("scalpel_queue_depth", ()) not in got  # the filesystem broker has no LLEN
    failures = got.get(("scalpel_webhook_failed_attempts", ()))
    assert failures is None or failures >= 0


def test_queue_depth_from_redis(make_client: MakeClient, db_session: Session) -> None:
    queue = f"test-metrics-{uuid.uuid4().hex}"
    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.rpush(queue, "a", "b", "c")
        client = metrics_client(make_client, db_session, redis_url=REDIS_URL, compress_queue=queue)
        got = samples(client.get("/metrics").text)
        assert got[("scalpel_queue_depth", ())] == 3
    finally:
        r.delete(queue)
        r.close()


@pytest.mark.parametrize(
    ("header", "status"), [(None, 401), ("Bearer wrong", 401), ("Bearer s3cret", 200)]
)
def test_metrics_token(
    make_client: MakeClient, db_session: Session, header: str | None, status: int
) -> None:
    client = metrics_client(make_client, db_session, metrics_token="s3cret")
    headers = {"Authorization": header} if header else {}
    assert client.get("/metrics", headers=headers).status_code == status
