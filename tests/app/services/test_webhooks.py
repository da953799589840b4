"""Webhooks on the real PostgreSQL, in the test's rolled-back transaction: the outbox row is
written with the terminal state, the dispatcher signs with every valid secret, retries with
backoff and ends succeeded or failed, and secrets rotate with a grace period."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job, Tenant, WebhookAttempt, WebhookDelivery
from app.errors import Unprocessable
from app.repositories import jobs as jobs_repo
from app.repositories import webhooks as webhooks_repo
from app.services import jobs as jobs_service
from app.services import webhooks as service
from app.services.reaper import reap_once
from app.services.webhook_dispatch import dispatch_due_webhooks, make_client
from app.services.webhook_outbox import check_submitted_url, record_terminal
from app.settings import Settings
from app.tenancy import Caller
from app.webhooks.signing import SignatureError, verify
from tests.app.webhooks.test_pinned import PUBLIC, answers, serve
from tests.factories.tenants import make_api_key
from tests.factories.webhooks import make_delivery
from worker.job_store import JobStore

URL = "http://127.0.0.1:9/hook"


def settings(**over: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_allow": ["loopback"], "webhook_backoff_base_s": 1, "webhook_backoff_cap_s": 4,
        "webhook_max_attempts": 4, "webhook_max_age_s": 3600, "webhook_secret_grace_s": 60,
    }  # fmt: skip
    return Settings(**{**values, **over})


@pytest.fixture
def caller(db_session: Session) -> Caller:
    return Caller(make_api_key(db_session).tenant_id)


def webhook_job(db: Session, caller: Caller, url: str | None = URL) -> Job:
    job = jobs_repo.create_queued(db, caller.tenant_id, {"model": "minilm-l6"}, url)
    db.commit()
    return job


class Receiver:
    """An httpx transport answering with `codes` in turn and keeping every request."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.codes.pop(0) if self.codes else 200)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def deliveries(db: Session, job: Job) -> list[WebhookDelivery]:
    return list(db.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job.id)))


def test_cancel_of_a_queued_job_writes_the_delivery(db_session: Session, caller: Caller) -> None:
    job = webhook_job(db_session, caller)
    jobs_service.cancel(db_session, str(job.id), caller)
    [d] = deliveries(db_session, job)
    assert (d.event_type, d.status, d.attempts, d.url) == ("job.canceled", "pending", 0, URL)
    assert d.msg_id.startswith("msg_") and d.tenant_id == caller.tenant_id
    data = d.payload["data"]
    assert d.payload["type"] == "job.canceled"
    assert data["job_id"] == str(job.id) and data["status"] == "canceled"
    assert data["artifacts_url"] == f"/v1/jobs/{job.id}/artifacts"


def test_no_webhook_url_no_delivery(db_session: Session, caller: Caller) -> None:
    job = webhook_job(db_session, caller, url=None)
    jobs_service.cancel(db_session, str(job.id), caller)
    assert deliveries(db_session, job) == []


def test_worker_finish_writes_the_delivery_in_its_transaction(
    db_session: Session, caller: Caller
) -> None:
    job = webhook_job(db_session, caller)
    store = JobStore(
        lambda: Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    )
    assert store.claim(job.id, "w:1", max_attempts=3).status == "running"
    f1 = {"name": "f1", "value": 0.81}
    metrics = {"sparsity": 0.5, "f1": 0.81, "primary_metric": f1, "stage_seconds": {"train": 1.0},
               "per_type": {"PER": {"f1": 0.9}}, "odd": {"name": "x", "value": "y"}}  # fmt: skip
    assert store.finish(job.id, "failed", code="oom", message="boom", metrics=metrics) == "failed"
    db_session.expire_all()
    [d] = deliveries(db_session, job)
    assert d.event_type == "job.failed"
    assert d.payload["data"]["error_code"] == "oom"
    # scalars and the task's {name, value} primary metric; no nested breakdowns
    assert d.payload["data"]["metrics"] == {"sparsity": 0.5, "f1": 0.81, "primary_metric": f1}


def test_dispatch_retries_then_succeeds_with_one_webhook_id(
    db_session: Session, caller: Caller
) -> None:
    job = webhook_job(db_session, caller)
    jobs_service.cancel(db_session, str(job.id), caller)
    db_session.commit()
    receiver, s = Receiver(500, 503, 200), settings()
    now = utcnow()
    with receiver.client() as client:
        for _ in range(3):
            report = dispatch_due_webhooks(db_session, s, client, now)
            assert report.succeeded + report.retrying == 1
            [d] = deliveries(db_session, job)
            if d.status == "pending":
                assert d.next_attempt_at is not None and d.next_attempt_at > now
                assert dispatch_due_webhooks(db_session, s, client, now).retrying == 0
                now = d.next_attempt_at
    assert (d.status, d.attempts, d.last_status_code, d.next_attempt_at) == (
        "succeeded", 3, 200, None,
    )  # fmt: skip
    codes = db_session.scalars(
        select(WebhookAttempt.status_code).where(WebhookAttempt.delivery_id == d.id)
    )
    assert list(codes) == [500, 503, 200]
    [secret] = webhooks_repo.valid_secrets(db_session, caller.tenant_id, now)  # made lazily
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {d.msg_id}
    for r in receiver.requests:
        verify(secret.secret, dict(r.headers), r.content)
        assert json.loads(r.content)["type"] == "job.canceled"


def test_a_4xx_is_final_and_attempts_are_bounded(db_session: Session, caller: Caller) -> None:
    s = settings(webhook_max_attempts=2)
    first, second = webhook_job(db_session, caller), webhook_job(db_session, caller)
    jobs_service.cancel(db_session, str(first.id), caller)
    db_session.commit()
    with Receiver(410).client() as client:
        dispatch_due_webhooks(db_session, s, client, utcnow())
    [d] = deliveries(db_session, first)
    assert (d.status, d.attempts, d.last_error) == ("failed", 1, "HTTP 410")

    jobs_service.cancel(db_session, str(second.id), caller)
    db_session.commit()
    now = utcnow()
    with Receiver(500, 500, 500).client() as client:
        dispatch_due_webhooks(db_session, s, client, now)
        dispatch_due_webhooks(db_session, s, client, now + timedelta(seconds=10))
    [d] = deliveries(db_session, second)
    assert (d.status, d.attempts, d.next_attempt_at) == ("failed", 2, None)


def test_egress_refused_at_delivery_is_final(db_session: Session, caller: Caller) -> None:
    job = webhook_job(db_session, caller)
    jobs_service.cancel(db_session, str(job.id), caller)
    db_session.commit()
    receiver = Receiver()
    with receiver.client() as client:
        dispatch_due_webhooks(db_session, settings(webhook_allow=[]), client, utcnow())
    [d] = deliveries(db_session, job)
    assert d.status == "failed" and "loopback" in (d.last_error or "")
    assert receiver.requests == []


def test_rotation_keeps_the_old_secret_for_the_grace(db_session: Session, caller: Caller) -> None:
    s, now = settings(webhook_secret_grace_s=60), utcnow()
    first = service.rotate_secret(db_session, s, caller, now)
    assert first.previous_expire_at is None and first.secret.expires_at is None
    second = service.rotate_secret(db_session, s, caller, now + timedelta(seconds=1))
    assert second.previous_expire_at == now + timedelta(seconds=61)
    valid = service.ensure_secrets(db_session, caller.tenant_id, now + timedelta(seconds=30))
    assert [v.id for v in valid] == [second.secret.id, first.secret.id]
    later = service.ensure_secrets(db_session, caller.tenant_id, now + timedelta(seconds=120))
    assert [v.id for v in later] == [second.secret.id]

    job = webhook_job(db_session, caller)
    jobs_service.cancel(db_session, str(job.id), caller)
    db_session.commit()
    receiver = Receiver()
    with receiver.client() as client:
        dispatch_due_webhooks(db_session, s, client, utcnow())
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (first.secret.secret, second.secret.secret):
        verify(secret, dict(request.headers), request.content)
    with pytest.raises(SignatureError):
        verify("whsec_" + "A" * 44, dict(request.headers), request.content)


def test_redeliver_requeues_now(db_session: Session, caller: Caller) -> None:
    job = webhook_job(db_session, caller)
    jobs_service.cancel(db_session, str(job.id), caller)
    db_session.commit()
    with Receiver(200, 200).client() as client:
        dispatch_due_webhooks(db_session, settings(), client, utcnow())
        [d] = deliveries(db_session, job)
        assert d.status == "succeeded"
        service.redeliver(db_session, str(job.id), str(d.id), caller)
        assert d.status == "pending"
        dispatch_due_webhooks(db_session, settings(), client, utcnow())
    assert (d.status, d.attempts) == ("succeeded", 2)
    other = Caller(make_api_key(db_session).tenant_id)
    with pytest.raises(Exception, match="no job"):
        service.redeliver(db_session, str(job.id), str(d.id), other)


def test_rebinding_name_never_reaches_the_internal_receiver(
    db_session: Session, caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher's own client, a real receiver on 127.0.0.1, and a name that answers a
    public address first and 127.0.0.1 after: the first attempt goes to the vetted public
    address (and fails), the second is refused by the check; the receiver gets nothing."""
    receiver, stop = serve()
    try:
        job = webhook_job(db_session, caller, f"http://rebind.test:{receiver.port}/hook")
        jobs_service.cancel(db_session, str(job.id), caller)
        db_session.commit()
        given = answers("rebind.test", [PUBLIC, "127.0.0.1"], monkeypatch)
        s = settings(webhook_allow=[], webhook_timeout_s=2)
        now = utcnow()
        with make_client(s) as client:
            dispatch_due_webhooks(db_session, s, client, now)
            [d] = deliveries(db_session, job)
            assert d.status == "pending" and d.next_attempt_at is not None
            dispatch_due_webhooks(db_session, s, client, d.next_attempt_at)
    finally:
        stop()
    assert receiver.requests == [] and given == [PUBLIC, "127.0.0.1"]
    [d] = deliveries(db_session, job)
    errors = list(db_session.scalars(
        select(WebhookAttempt.error).where(WebhookAttempt.delivery_id == d.id)
        .order_by(WebhookAttempt.id)
    ))  # fmt: skip
    assert d.status == "failed" and d.attempts == 2
    assert errors[0] is not None and errors[0].startswith("Connect")
    assert errors[1] is not None and errors[1].startswith(
        "refused (loopback): 'rebind.test' resolves to a loopback address (127.0.0.1); "
    )
    assert """set WEBHOOK_ALLOW='["loopback"]'""" in errors[1]


@pytest.mark.parametrize(
    ("url", "allow", "refused"),
    [
        ("https://example.com/hook", [], False),
        ("http://localhost:8080/hook", [], False),  # a name: checked at delivery
        ("http://10.1.2.3/hook", [], True),
        ("http://169.254.169.254/latest", [], True),
        ("http://[::1]:8080/hook", [], True),
        ("http://127.0.0.1:8080/hook", ["loopback"], False),
        ("http://127.0.0.1:8080/hook", [], True),
        ("ftp://example.com/x", [], True),
        ("http://user:pw@example.com/x", [], True),
    ],
)
def test_submitted_url_check(url: str, allow: list[str], refused: bool) -> None:
    s = settings(webhook_allow=allow)
    if refused:
        with pytest.raises(Unprocessable) as info:
            check_submitted_url(url, s)
        assert info.value.field == "webhook_url" and info.value.code == "webhook_url_refused"
    else:
        check_submitted_url(url, s)


def test_record_terminal_ignores_unfinished_jobs(db_session: Session, caller: Caller) -> None:
    job = webhook_job(db_session, caller)
    record_terminal(db_session, job, base_url=None)
    db_session.flush()
    assert deliveries(db_session, job) == []


def test_reaper_failing_a_lost_job_writes_the_delivery(db_session: Session, caller: Caller) -> None:
    job = webhook_job(db_session, caller)
    now = utcnow()
    job.status, job.attempts, job.worker_id = "running", 3, "host:1"
    job.started_at = job.heartbeat_at = now - timedelta(seconds=600)
    job.dispatched_at = now
    db_session.commit()

    def factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    report = reap_once(factory, Settings(max_attempts=3), lambda _id: None)
    assert job.id in report.failed
    db_session.expire_all()
    [d] = deliveries(db_session, job)
    assert d.event_type == "job.failed" and d.payload["data"]["error_code"] == "worker_lost"


def test_due_deliveries_are_skipped_while_another_dispatcher_holds_them(
    pg_engine: Engine,
) -> None:
    """Committed rows on two connections (cleaned up after): the second lock_due skips."""
    with Session(pg_engine) as s:
        tenant_id = make_api_key(s).tenant_id
        job = jobs_repo.create_queued(s, tenant_id, {"model": "minilm-l6"}, URL)
        delivery = make_delivery(s, job)
        job_id, delivery_id = job.id, delivery.id
    try:
        with Session(pg_engine) as first, Session(pg_engine) as second:
            mine = webhooks_repo.lock_due(first, now=utcnow(), limit=100)
            assert delivery_id in {d.id for d in mine}
            theirs = webhooks_repo.lock_due(second, now=utcnow(), limit=100)
            assert delivery_id not in {d.id for d in theirs}
            first.rollback()
            second.rollback()
    finally:
        with Session(pg_engine) as s:
            s.execute(delete(Job).where(Job.id == job_id))
            s.execute(delete(Tenant).where(Tenant.id == tenant_id))
            s.commit()
