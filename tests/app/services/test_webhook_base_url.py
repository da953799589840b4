"""A terminal webhook's artifacts_url is under the PUBLIC_BASE_URL of the Settings of whoever
ends the job: the app's own (create_app(settings)) for a cancel, the reaper's and the
worker's for theirs; never the process's global settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job, WebhookDelivery
from app.repositories import jobs as jobs_repo
from app.services.api_keys import IssuedKey
from app.services.reaper import reap_once
from app.settings import Settings, get_settings
from tests.app.conftest import MakeClient
from worker.job_store import JobStore

URL = "http://127.0.0.1:9/hook"
GLOBAL = "https://global.example"


@pytest.fixture
def global_base_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What get_settings() gives: not the base URL under test."""
    monkeypatch.setenv("PUBLIC_BASE_URL", GLOBAL)
    get_settings.cache_clear()
    assert get_settings().public_base_url == GLOBAL
    yield
    get_settings.cache_clear()


def webhook_job(db: Session, tenant_id: uuid.UUID, status: str = "queued") -> Job:
    job = jobs_repo.create_queued(db, tenant_id, {"model": "minilm-l6"}, URL)
    job.status = status
    db.commit()
    return job


def artifacts_url(db: Session, job_id: uuid.UUID) -> str:
    db.expire_all()
    [d] = db.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
    url: str = d.payload["data"]["artifacts_url"]
    return url


def test_a_cancel_uses_the_apps_own_base_url(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    client: TestClient = make_client(public_base_url="https://app.example/scalpel")
    monkeypatch.setenv("PUBLIC_BASE_URL", GLOBAL)  # the process's settings, after the app's
    get_settings.cache_clear()
    job = webhook_job(db_session, api_key.tenant_id)
    assert client.post(f"/v1/jobs/{job.id}/cancel").status_code == 200
    assert artifacts_url(db_session, job.id) == (
        f"https://app.example/scalpel/v1/jobs/{job.id}/artifacts"
    )


def test_the_reaper_uses_its_settings_base_url(
    db_session: Session, api_key: IssuedKey, global_base_url: None
) -> None:
    job = webhook_job(db_session, api_key.tenant_id, "running")
    now = utcnow()
    job.attempts, job.worker_id, job.dispatched_at = 3, "host:1", now
    job.started_at = job.heartbeat_at = now - timedelta(seconds=600)
    db_session.commit()

    def factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    settings = Settings(max_attempts=3, public_base_url="https://reaper.example")
    assert job.id in reap_once(factory, settings, lambda _id: None).failed
    assert artifacts_url(db_session, job.id) == f"https://reaper.example/v1/jobs/{job.id}/artifacts"


@pytest.mark.parametrize("base_url", ["https://worker.example", None])
def test_the_worker_uses_the_base_url_it_was_given(
    db_session: Session, api_key: IssuedKey, global_base_url: None, base_url: str | None
) -> None:
    job = webhook_job(db_session, api_key.tenant_id)
    store = JobStore(
        lambda: Session(bind=db_session.connection(), join_transaction_mode="create_savepoint"),
        base_url=base_url,
    )
    assert store.claim(job.id, "w:1", max_attempts=3).status == "running"
    assert store.finish(job.id, "failed", code="oom", message="boom") == "failed"
    assert artifacts_url(db_session, job.id) == f"{base_url or ''}/v1/jobs/{job.id}/artifacts"
