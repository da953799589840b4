"""A dispatch pass when a leased delivery's row vanishes (its job deleted) while it is being
sent: the attempt is logged and skipped, and the rest of the batch is sent and recorded.
PostgreSQL with committed rows on two connections; SQLite, which locks no row, as well."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from alembic import command
from app.db.models import Job, Tenant, WebhookAttempt, WebhookDelivery
from app.db.session import make_engine
from app.repositories import jobs as jobs_repo
from app.repositories import webhooks as webhooks_repo
from app.services.webhook_dispatch import dispatch_due_webhooks
from app.settings import Settings
from tests.conftest import alembic_config
from tests.factories.webhooks import make_delivery

URL = "http://127.0.0.1:9/hook"
SETTINGS = Settings(webhook_allow=["loopback"])


def two_jobs_to_send(engine: Engine) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A tenant and two finished jobs, each with a pending delivery; committed."""
    with Session(engine) as s:
        tenant = Tenant(id=uuid.uuid4(), name=f"vanish-{uuid.uuid4().hex[:8]}")
        s.add(tenant)
        s.flush()
        jobs = []
        for _ in range(2):
            job = jobs_repo.create_queued(s, tenant.id, {"model": "minilm-l6"}, URL)
            job.status = "canceled"
            make_delivery(s, job, URL)
            jobs.append(job.id)
        return tenant.id, jobs


def deleting_receiver(engine: Engine, sent: list[uuid.UUID]) -> httpx.Client:
    """Answers 200; the first message's job is deleted (on another connection) while that
    message is being received."""

    def receive(request: httpx.Request) -> httpx.Response:
        job_id = uuid.UUID(json.loads(request.content)["data"]["job_id"])
        if not sent:
            with Session(engine) as other:
                jobs_repo.delete_job(other, job_id)
                other.commit()
        sent.append(job_id)
        return httpx.Response(200)

    return httpx.Client(transport=httpx.MockTransport(receive))


def check_the_rest_went(engine: Engine, jobs: list[uuid.UUID], sent: list[uuid.UUID]) -> None:
    gone, kept = sent
    assert sorted(sent, key=str) == sorted(jobs, key=str)
    with Session(engine) as s:
        assert s.get(Job, gone) is None
        [d] = s.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == kept))
        assert (d.status, d.attempts, d.last_status_code) == ("succeeded", 1, 200)
        assert len(s.scalars(select(WebhookAttempt)).all()) == 1


@pytest.fixture
def pg(pg_engine: Engine) -> Iterator[tuple[uuid.UUID, list[uuid.UUID]]]:
    tenant_id, jobs = two_jobs_to_send(pg_engine)
    yield tenant_id, jobs
    with Session(pg_engine) as s:
        s.execute(delete(Job).where(Job.tenant_id == tenant_id))
        s.execute(delete(Tenant).where(Tenant.id == tenant_id))
        s.commit()


def test_postgres_a_delivery_gone_mid_send_is_skipped_and_the_rest_sent(
    pg_engine: Engine, pg: tuple[uuid.UUID, list[uuid.UUID]], caplog: pytest.LogCaptureFixture
) -> None:
    _, jobs = pg
    sent: list[uuid.UUID] = []
    with (
        Session(pg_engine, expire_on_commit=False) as session,
        deleting_receiver(pg_engine, sent) as http,
    ):
        report = dispatch_due_webhooks(session, SETTINGS, http)
    assert (report.succeeded, report.retrying, report.failed) == (1, 0, 0)
    check_the_rest_went(pg_engine, jobs, sent)
    assert "is gone (its job was deleted); skipped" in caplog.text


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_sqlite_a_delivery_gone_mid_send_is_skipped_and_the_rest_sent(sqlite: Engine) -> None:
    _, jobs = two_jobs_to_send(sqlite)
    sent: list[uuid.UUID] = []
    with Session(sqlite) as session, deleting_receiver(sqlite, sent) as http:
        report = dispatch_due_webhooks(session, SETTINGS, http)
    assert (report.succeeded, report.retrying, report.failed) == (1, 0, 0)
    check_the_rest_went(sqlite, jobs, sent)


def test_sqlite_a_delivery_gone_after_its_check_is_skipped_too(
    sqlite: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's check takes no lock: a deletion between it and the commit is met at the
    write (the row matched nothing) and skipped the same way."""
    _, jobs = two_jobs_to_send(sqlite)
    sent: list[uuid.UUID] = []
    checked = webhooks_repo.lock

    def check_then_lose(session: Session, delivery_id: uuid.UUID) -> bool:
        present = checked(session, delivery_id)
        if not sent[1:]:  # the first delivery's check: its job goes right after
            with Session(sqlite) as other:
                job_id = other.scalars(
                    select(WebhookDelivery.job_id).where(WebhookDelivery.id == delivery_id)
                ).one()
                jobs_repo.delete_job(other, job_id)
                other.commit()
        return present

    monkeypatch.setattr(webhooks_repo, "lock", check_then_lose)

    def receiver(request: httpx.Request) -> httpx.Response:
        sent.append(uuid.UUID(json.loads(request.content)["data"]["job_id"]))
        return httpx.Response(200)

    with Session(sqlite) as session, httpx.Client(transport=httpx.MockTransport(receiver)) as http:
        report = dispatch_due_webhooks(session, SETTINGS, http)
    assert (report.succeeded, report.retrying, report.failed) == (1, 0, 0)
    check_the_rest_went(sqlite, jobs, sent)
