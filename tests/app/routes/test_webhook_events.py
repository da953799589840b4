"""A submission's webhook_events (the terminal ones by default, job.running and
job.pruning_step on request), the job's webhook as the API shows it (with the notice of a
tenant that has no signing secret yet), and payload links under PUBLIC_BASE_URL."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import Job
from app.schemas.webhook_events import WebhookEvent
from tests.app.conftest import MakeClient
from tests.app.routes.test_jobs import problem, spec

URL = "https://example.com/hook"
TERMINAL = ["job.succeeded", "job.failed", "job.canceled"]


def submit(client: TestClient, **extra: object) -> dict[str, object]:
    r = client.post("/v1/jobs", json={**spec(webhook_url=URL), **extra})
    assert r.status_code == 202, r.text
    body: dict[str, object] = r.json()
    return body


def test_the_default_events_are_the_terminal_ones(client: TestClient, db_session: Session) -> None:
    body = submit(client)
    assert body["webhook"] == {
        "url": URL, "events": TERMINAL,
        "notice": "no signing secret: POST /v1/webhook-secrets to make one (shown once) and "
        "verify this job's deliveries with it",
    }  # fmt: skip
    job = db_session.get(Job, uuid.UUID(str(body["id"])))
    assert job is not None and job.webhook_events == TERMINAL
    # the notice is the submission's: reads show where the events go
    got = client.get(f"/v1/jobs/{body['id']}").json()
    assert got["webhook"] == {"url": URL, "events": TERMINAL, "notice": None}


def test_a_tenant_with_a_secret_gets_no_notice(client: TestClient) -> None:
    assert client.post("/v1/webhook-secrets").status_code == 201
    assert submit(client)["webhook"] == {"url": URL, "events": TERMINAL, "notice": None}


def test_a_job_without_a_webhook_has_none(client: TestClient, db_session: Session) -> None:
    r = client.post("/v1/jobs", json=spec())
    assert r.status_code == 202 and r.json()["webhook"] is None


def test_requested_events_are_stored_beside_the_spec(
    client: TestClient, db_session: Session
) -> None:
    events = ["job.running", "job.pruning_step", "job.succeeded"]
    body = submit(client, webhook_events=events)
    assert body["webhook"]["events"] == events  # type: ignore[index]
    assert "webhook_events" not in body["spec"]  # type: ignore[operator]
    job = db_session.get(Job, uuid.UUID(str(body["id"])))
    assert job is not None and job.webhook_events == events


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (["job.running", "job.exploded"], "webhook_events[1]"),
        ([], "webhook_events"),
        (["job.running", "job.running"], "webhook_events"),
        ("job.running", "webhook_events"),
    ],
)
def test_bad_events_are_422_naming_the_field(
    client: TestClient, events: object, field: str
) -> None:
    r = client.post("/v1/jobs", json={**spec(webhook_url=URL), "webhook_events": events})
    assert problem(r, 422, "validation_error")["field"] == field


def test_events_need_a_webhook_url(client: TestClient) -> None:
    r = client.post("/v1/jobs", json={**spec(), "webhook_events": ["job.running"]})
    body = problem(r, 422, "validation_error")
    assert body["field"] == "webhook_events" and "webhook_url" in body["detail"]


def test_only_the_listed_events_are_sent(client: TestClient) -> None:
    job_id = submit(client, webhook_events=["job.succeeded"])["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    assert client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json() == {"items": []}


def test_the_events_count_in_the_idempotency_fingerprint(client: TestClient) -> None:
    headers = {"Idempotency-Key": "events-1"}
    first = client.post("/v1/jobs", json=spec(webhook_url=URL), headers=headers)
    assert first.status_code == 202
    other = {**spec(webhook_url=URL), "webhook_events": ["job.running"]}
    problem(client.post("/v1/jobs", json=other, headers=headers), 422, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (
            "https://scalpel.example.com/api/",
            "https://scalpel.example.com/api/v1/jobs/{id}/artifacts",
        ),
        ("", "/v1/jobs/{id}/artifacts"),
    ],
)
def test_artifacts_url_is_absolute_under_public_base_url(
    make_client: MakeClient, base: str, expected: str
) -> None:
    client = make_client(public_base_url=base)
    job_id = submit(client)["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    [d] = client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json()["items"]
    assert d["payload"]["data"]["artifacts_url"] == expected.format(id=job_id)
    event = WebhookEvent.model_validate(d["payload"])
    assert d["payload"]["timestamp"].endswith("Z") and event.timestamp.utcoffset() is not None
    assert d["payload"]["data"]["finished_at"].endswith("Z")


def test_the_new_events_are_documented(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    hooks = doc["webhooks"]
    assert {"job.running", "job.pruning_step"} <= set(hooks)
    body = hooks["job.pruning_step"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/WebhookPruningStepEvent"}
    data = doc["components"]["schemas"]["WebhookPruningStepData"]["properties"]
    assert {"index", "step", "sparsity", "speedup", "primary_metric"} <= set(data)
    submission = doc["components"]["schemas"]["JobSubmission"]["properties"]["webhook_events"]
    assert set(submission["items"]["enum"]) == {*TERMINAL, "job.running", "job.pruning_step"}
