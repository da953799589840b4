"""DELETE /v1/jobs/{id} and the job's webhooks: while one of its deliveries is still to be
sent (due, being sent, or waiting for its retry) the deletion is a 409 webhook_pending
saying when to retry, so that wait -> download -> delete never loses `job.succeeded`; once
every delivery is sent or has failed for good, the job goes (with its delivery log)."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job, WebhookDelivery
from app.services.api_keys import IssuedKey
from app.services.webhook_dispatch import dispatch_due_webhooks
from app.settings import Settings
from tests.app.routes.test_jobs import problem
from tests.factories.jobs import make_listed_job
from tests.factories.webhooks import make_delivery

URL = "http://127.0.0.1:9/hook"


def finished_with_delivery(db: Session, key: IssuedKey, status: str = "pending") -> Job:
    job = make_listed_job(db, key.tenant_id, status="succeeded")
    delivery = make_delivery(db, job, URL)
    delivery.status = status
    if status != "pending":
        delivery.next_attempt_at = None
    db.commit()
    return job


def test_a_job_with_a_delivery_to_send_is_refused_saying_when_to_retry(
    client: TestClient, db_session: Session, api_key: IssuedKey
) -> None:
    job = finished_with_delivery(db_session, api_key)
    [delivery] = db_session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job.id))
    retry = utcnow() + timedelta(seconds=300)  # waiting for its retry
    delivery.next_attempt_at, delivery.attempts = retry, 2
    db_session.commit()
    r = client.delete(f"/v1/jobs/{job.id}")
    body = problem(r, 409, "webhook_pending")
    wait_s = int(r.headers["retry-after"])
    timeout = Settings().webhook_timeout_s
    assert 300 + timeout - 2 <= wait_s <= 300 + timeout + Settings().webhook_dispatch_interval_s
    assert "retry the deletion after" in body["detail"]
    assert "job.canceled" in body["detail"]
    assert f"/v1/jobs/{job.id}/webhook-deliveries" in body["detail"]
    [err] = body["errors"]
    assert (err["delivery_id"], err["attempts"]) == (str(delivery.id), 2)
    assert datetime.fromisoformat(err["next_attempt_at"]) == retry
    assert client.get(f"/v1/jobs/{job.id}").status_code == 200
    db_session.expire_all()
    assert db_session.get(WebhookDelivery, delivery.id) is not None


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_a_job_whose_deliveries_are_done_goes_with_them(
    client: TestClient, db_session: Session, api_key: IssuedKey, status: str
) -> None:
    job = finished_with_delivery(db_session, api_key, status)
    job_id = job.id
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    db_session.expire_all()
    assert db_session.get(Job, job_id) is None
    assert (
        db_session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)).all()
        == []
    )


def test_wait_then_delete_keeps_job_succeeded_until_it_is_sent(
    client: TestClient, db_session: Session, api_key: IssuedKey
) -> None:
    """A script deleting the job as soon as it has finished gets 409 until the dispatcher
    has sent the event; then the deletion goes through."""
    job = finished_with_delivery(db_session, api_key)
    problem(client.delete(f"/v1/jobs/{job.id}"), 409, "webhook_pending")
    sent: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    settings = Settings(webhook_allow=["loopback"])
    with httpx.Client(transport=httpx.MockTransport(receive)) as http:
        report = dispatch_due_webhooks(db_session, settings, http)
    assert report.succeeded == 1 and len(sent) == 1
    assert client.delete(f"/v1/jobs/{job.id}").status_code == 204
