"""Webhook routes: the submission check of webhook_url, a job's delivery log and redelivery,
and secret rotation; all scoped to the caller's tenant."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.services.webhook_dispatch import dispatch_due_webhooks
from app.settings import Settings
from tests.app.conftest import MakeClient
from tests.app.routes.test_jobs import problem, spec
from tests.factories.tenants import make_api_key


def canceled_job(client: TestClient, url: str = "http://127.0.0.1:9/hook") -> str:
    r = client.post("/v1/jobs", json=spec(webhook_url=url))
    assert r.status_code == 202, r.text
    job_id: str = r.json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    return job_id


def test_literal_private_webhook_url_is_refused(make_client: MakeClient) -> None:
    client = make_client()
    body = problem(client.post("/v1/jobs", json=spec(webhook_url="http://10.0.0.7/h")), 422,
                   "webhook_url_refused")  # fmt: skip
    assert body["field"] == "webhook_url"
    problem(client.post("/v1/jobs", json=spec(webhook_url="http://127.0.0.1/h")), 422,
            "webhook_url_refused")  # fmt: skip
    allowed = make_client(webhook_allow='["loopback"]')
    assert allowed.post("/v1/jobs", json=spec(webhook_url="http://127.0.0.1/h")).status_code == 202


def test_delivery_log_and_redeliver(make_client: MakeClient, db_session: Session) -> None:
    client = make_client(webhook_allow='["loopback"]')
    job_id = canceled_job(client)
    [d] = client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json()["items"]
    assert (d["event_type"], d["status"], d["attempts"], d["attempt_log"]) == (
        "job.canceled", "pending", 0, [],
    )  # fmt: skip

    codes = [503, 200]
    transport = httpx.MockTransport(lambda _r: httpx.Response(codes.pop(0)))
    settings = Settings(webhook_allow=["loopback"])
    with httpx.Client(transport=transport) as http:
        dispatch_due_webhooks(db_session, settings, http, utcnow())
        dispatch_due_webhooks(db_session, settings, http, utcnow() + timedelta(seconds=10))
    [d] = client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json()["items"]
    assert d["status"] == "succeeded" and d["attempts"] == 2
    assert [a["status_code"] for a in d["attempt_log"]] == [503, 200]
    assert d["attempt_log"][0]["error"] == "HTTP 503"

    r = client.post(f"/v1/jobs/{job_id}/webhook-deliveries/{d['id']}/redeliver")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending" and r.json()["msg_id"] == d["msg_id"]
    problem(client.post(f"/v1/jobs/{job_id}/webhook-deliveries/nope/redeliver"), 404,
            "delivery_not_found")  # fmt: skip

    other = make_client(key=make_api_key(db_session, "tenant-b"))
    problem(other.get(f"/v1/jobs/{job_id}/webhook-deliveries"), 404, "job_not_found")
    problem(other.post(f"/v1/jobs/{job_id}/webhook-deliveries/{d['id']}/redeliver"), 404,
            "job_not_found")  # fmt: skip


def test_secret_rotation(make_client: MakeClient, db_session: Session) -> None:
    client = make_client(webhook_secret_grace_s="120")
    assert client.get("/v1/webhook-secrets").json() == {"items": []}
    r1 = client.post("/v1/webhook-secrets")
    assert r1.status_code == 201, r1.text
    first = r1.json()
    assert first["secret"].startswith("whsec_") and first["previous_expire_at"] is None
    second = client.post("/v1/webhook-secrets").json()
    assert second["secret"] != first["secret"] and second["previous_expire_at"] is not None
    items = client.get("/v1/webhook-secrets").json()["items"]
    assert [i["id"] for i in items] == [second["id"], first["id"]]
    assert items[0]["expires_at"] is None
    assert items[1]["expires_at"] == second["previous_expire_at"]
    assert all("secret" not in i for i in items)
    assert first["secret"] not in client.get("/v1/webhook-secrets").text

    other = make_client(key=make_api_key(db_session, "tenant-b"))
    assert other.get("/v1/webhook-secrets").json() == {"items": []}
