"""job.running and job.pruning_step webhooks, on request: the worker's claim and its pruning
step's metrics event write the delivery in their own transaction, and it is signed, retried
and logged like a terminal one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job, JobEvent, WebhookDelivery
from app.repositories import jobs as jobs_repo
from app.repositories import webhooks as webhooks_repo
from app.schemas.webhook_events import WebhookPruningStepEvent, WebhookRunningEvent
from app.services.webhook_dispatch import dispatch_due_webhooks
from app.tenancy import Caller
from app.webhooks.signing import verify
from tests.app.services.test_webhooks import Receiver, settings
from tests.factories.tenants import make_api_key
from worker.job_store import JobStore
from worker.runner import DbReporter

URL = "http://127.0.0.1:9/hook"
STEP = {"step": 40, "sparsity": 0.5, "dev_accuracy": 0.81, "prune_step": 2}


@pytest.fixture
def caller(db_session: Session) -> Caller:
    return Caller(make_api_key(db_session).tenant_id)


@pytest.fixture
def store(db_session: Session) -> JobStore:
    return JobStore(
        lambda: Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    )


def job_with(db: Session, caller: Caller, events: Sequence[str] | None) -> Job:
    job = jobs_repo.create_queued(
        db, caller.tenant_id, {"model": "minilm-l6"}, URL, webhook_events=events
    )
    db.commit()
    return job


def deliveries(db: Session, job: Job) -> list[WebhookDelivery]:
    db.expire_all()
    stmt = select(WebhookDelivery).where(WebhookDelivery.job_id == job.id)
    return list(db.scalars(stmt.order_by(WebhookDelivery.created_at)))


def test_the_claim_writes_job_running_when_asked(
    db_session: Session, caller: Caller, store: JobStore
) -> None:
    job = job_with(db_session, caller, ["job.running", "job.succeeded"])
    assert store.claim(job.id, "w:1", max_attempts=3).status == "running"
    [d] = deliveries(db_session, job)
    assert (d.event_type, d.status, d.url) == ("job.running", "pending", URL)
    event = WebhookRunningEvent.model_validate(d.payload)
    assert event.data.job_id == job.id and event.data.attempt == 1
    assert d.payload["timestamp"].endswith("Z") and d.payload["data"]["started_at"].endswith("Z")
    # a retried job starts again: a second job.running, with its attempt
    db_session.execute(Job.__table__.update().where(Job.id == job.id).values(status="queued"))
    db_session.commit()
    store.claim(job.id, "w:2", max_attempts=3)
    assert [x.payload["data"]["attempt"] for x in deliveries(db_session, job)] == [1, 2]


@pytest.mark.parametrize("events", [None, ["job.succeeded", "job.pruning_step"]])
def test_no_job_running_unless_asked(
    db_session: Session, caller: Caller, store: JobStore, events: list[str] | None
) -> None:
    job = job_with(db_session, caller, events)
    store.claim(job.id, "w:1", max_attempts=3)
    assert deliveries(db_session, job) == []


def test_the_running_delivery_shares_the_claims_transaction(
    db_session: Session, caller: Caller, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery that cannot be written takes the claim back with it."""
    job = job_with(db_session, caller, ["job.running"])

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("outbox down")

    monkeypatch.setattr(webhooks_repo, "add_delivery", broken)
    with pytest.raises(RuntimeError):
        store.claim(job.id, "w:1", max_attempts=3)
    db_session.expire_all()
    row = db_session.get(Job, job.id)
    assert row is not None and (row.status, row.attempts) == ("queued", 0)


def test_a_pruning_steps_event_writes_job_pruning_step(
    db_session: Session, caller: Caller, store: JobStore
) -> None:
    job = job_with(db_session, caller, ["job.pruning_step"])
    store.claim(job.id, "w:1", max_attempts=3)
    reporter = DbReporter(store, job.id)
    reporter.current = "recover"
    reporter.step_metrics({**STEP, "speedup": 1.7})
    reporter.step_metrics({"step": 41, "loss": 0.3})  # not a pruning step's: no webhook
    [d] = deliveries(db_session, job)
    assert d.event_type == "job.pruning_step"
    event = WebhookPruningStepEvent.model_validate(d.payload)
    data = event.data
    assert (data.index, data.step, data.stage, data.sparsity, data.speedup) == (
        2, 40, "recover", 0.5, 1.7,
    )  # fmt: skip
    assert data.primary_metric is not None
    assert (data.primary_metric.name, data.primary_metric.value) == ("accuracy", 0.81)
    # the metrics events themselves are written as before
    kinds = db_session.scalars(
        select(JobEvent.data).where(JobEvent.job_id == job.id, JobEvent.kind == "metrics")
    )
    assert list(kinds) == [{**STEP, "speedup": 1.7}, {"step": 41, "loss": 0.3}]


def test_no_pruning_step_webhook_unless_asked(
    db_session: Session, caller: Caller, store: JobStore
) -> None:
    job = job_with(db_session, caller, None)
    store.add_metrics_event(job.id, STEP, stage="prune")
    assert deliveries(db_session, job) == []


def test_the_new_events_are_signed_and_retried_like_the_terminal_ones(
    db_session: Session, caller: Caller, store: JobStore
) -> None:
    job = job_with(db_session, caller, ["job.running", "job.pruning_step"])
    store.claim(job.id, "w:1", max_attempts=3)
    store.add_metrics_event(job.id, STEP, stage="prune")
    db_session.commit()
    receiver, s, now = Receiver(503, 503, 200, 200), settings(), utcnow()
    with receiver.client() as client:
        assert dispatch_due_webhooks(db_session, s, client, now).retrying == 2
        later = now + timedelta(seconds=60)
        assert dispatch_due_webhooks(db_session, s, client, later).succeeded == 2
    got = deliveries(db_session, job)
    assert [(d.event_type, d.status, d.attempts) for d in got] == [
        ("job.running", "succeeded", 2), ("job.pruning_step", "succeeded", 2),
    ]  # fmt: skip
    [secret] = webhooks_repo.valid_secrets(db_session, caller.tenant_id, later)
    for r in receiver.requests:
        verify(secret.secret, dict(r.headers), r.content)
    sent = [json.loads(r.content)["type"] for r in receiver.requests]
    assert sorted(sent) == ["job.pruning_step"] * 2 + ["job.running"] * 2
