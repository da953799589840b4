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


def metrics_client(
    make_client: MakeClient, db_session: Session, *, key: IssuedKey | None = None, **env: str
) -> TestClient:
    """A client on /metrics; without a key /metrics is open (METRICS_PUBLIC) unless the test
    sets its own access settings."""
    if key is None and "metrics_token" not in env:
        env.setdefault("metrics_public", "true")
    client = make_client(key=key, **env)
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


@pytest.mark.parametrize(
    ("who", "status"),
    [("nobody", 401), ("wrong", 401), ("tenant", 403), ("admin", 200), ("x-api-key", 200)],
)
def test_metrics_need_an_admin_key_by_default(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey, who: str, status: int
) -> None:
    """No METRICS_TOKEN and no METRICS_PUBLIC: the cross-tenant counts are an admin's."""
    from tests.factories.tenants import make_api_key

    admin = make_api_key(db_session, "ops", admin=True)
    headers = {
        "nobody": {}, "wrong": {"Authorization": "Bearer sk_0000_nope"},
        "tenant": {"Authorization": f"Bearer {api_key.token}"},
        "admin": {"Authorization": f"Bearer {admin.token}"},
        "x-api-key": {"X-API-Key": admin.token},
    }[who]  # fmt: skip
    client = make_client(key=None)
    client.app.dependency_overrides[session_factory] = lambda: (  # type: ignore[attr-defined]
        lambda: Session(bind=db_session.bind, join_transaction_mode="create_savepoint")
    )
    r = client.get("/metrics", headers=headers)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == ("forbidden" if status == 403 else "unauthenticated")
    else:
        assert "scalpel_jobs" in r.text


def test_metrics_token_or_an_admin_key(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey
) -> None:
    from tests.factories.tenants import make_api_key

    admin = make_api_key(db_session, "ops", admin=True)
    client = metrics_client(make_client, db_session, metrics_token="s3cret")
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {admin.token}"})
    assert ok.status_code == 200, ok.text
    tenant = client.get("/metrics", headers={"Authorization": f"Bearer {api_key.token}"})
    assert tenant.status_code == 403
    # METRICS_PUBLIC does not open a token-protected /metrics
    client = metrics_client(make_client, db_session, metrics_token="s3cret", metrics_public="true")
    assert client.get("/metrics").status_code == 401


@pytest.mark.parametrize(
    ("env", "level", "words"),
    [
        ({"metrics_public": "true"}, "WARNING", "/metrics is public"),
        ({}, "INFO", "/metrics needs an admin API key"),
    ],
)
def test_startup_says_who_may_read_metrics(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, env: dict[str, str], level: str,
    words: str,
) -> None:  # fmt: skip
    import logging

    caplog.set_level(logging.INFO, logger="app.services.metrics")
    client = make_client(key=None, **env)
    with client:  # runs the lifespan
        pass
    got = [r for r in caplog.records if r.name == "app.services.metrics" and words in r.message]
    assert got and got[0].levelname == level


def test_a_metrics_key_is_checked_by_admission_before_a_slot(
    make_client: MakeClient, db_session: Session
) -> None:
    """With no request slot to be had, a bad key presented to /metrics is a 401 at once:
    admission checks it in its key-check lane, before the slot. Before the fix the route
    checked it, on a request slot, so it waited for one and got a 503."""
    from app.admission_state import Lane
    from tests.factories.tenants import make_api_key

    admin = make_api_key(db_session, "ops", admin=True)
    client = make_client(key=None, admission_wait_s="0.3")
    client.app.dependency_overrides[session_factory] = lambda: (  # type: ignore[attr-defined]
        lambda: Session(bind=db_session.bind, join_transaction_mode="create_savepoint")
    )
    state = client.app.state.admission  # type: ignore[attr-defined]
    state.requests = Lane("requests", 0, wait_s=0.3)  # every slot taken
    bad = client.get("/metrics", headers={"Authorization": "Bearer sk_0000_nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthenticated", bad.text
    busy = client.get("/metrics", headers={"Authorization": f"Bearer {admin.token}"})
    assert busy.status_code == 503 and busy.json()["code"] == "overloaded"
    assert client.app.state.key_cache.get(admin.token).is_admin  # type: ignore[attr-defined]


def test_a_public_metrics_takes_no_key_check(make_client: MakeClient, db_session: Session) -> None:
    client = metrics_client(make_client, db_session, metrics_public="true")
    r = client.get("/metrics", headers={"Authorization": "Bearer sk_0000_nope"})
    assert r.status_code == 200, r.text
