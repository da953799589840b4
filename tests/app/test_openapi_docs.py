"""The OpenAPI document is complete: problem responses on every operation, request examples
(accepted by the API), and the job webhooks under OpenAPI 3.1 `webhooks`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db.models import Job
from app.main import create_app
from app.openapi_docs import job_spec_examples
from app.schemas.job_spec import JobSpec
from app.schemas.webhook_events import WebhookEvent

PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}
# Probes with no input and no key: nothing to refuse.
NO_INPUT = {"/healthz", "/readyz"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_app().openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_document_is_openapi_31_and_every_ref_resolves(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


def test_every_operation_documents_a_4xx_problem(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        if path in NO_INPUT:
            continue
        problems = {s: r for s, r in op["responses"].items() if s.isdigit() and 400 <= int(s) < 500}
        assert problems, (method, path)
        for status, response in problems.items():
            if path == "/v1/artifacts/{artifact_id}" and status in ("400", "416"):
                assert response["content"] == {"text/plain": {}}  # Starlette's Range answers
                continue
            assert response["content"] == {"application/problem+json": PROBLEM}, (path, status)


def test_error_statuses_follow_the_operation_shape(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        statuses = set(op["responses"])
        if op.get("security"):
            assert "401" in statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= statuses, (method, path)
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
    assert "409" in doc["paths"]["/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    for path in ("/v1/jobs", "/v1/models", "/v1/datasets"):  # Idempotency-Key in flight
        assert "409" in doc["paths"][path]["post"]["responses"]


def test_every_request_body_has_examples(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            assert content.get("examples"), (method, path, media)
    job = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    names = set(job["examples"])
    assert {"magnitude", "obert-gradual"} <= names
    if "recipe" in JobSpec.model_fields:
        assert "recipe" in names


@pytest.mark.parametrize("name", list(job_spec_examples()))
def test_job_spec_examples_are_accepted(client: TestClient, name: str) -> None:
    example = job_spec_examples()[name]["value"]
    JobSpec.model_validate(example)
    r = client.post("/v1/jobs", json=example)
    assert r.status_code == 202, r.text


def test_webhooks_are_documented_with_standard_webhooks_headers(doc: dict[str, Any]) -> None:
    hooks = doc["webhooks"]
    assert set(hooks) == {
        "job.succeeded", "job.failed", "job.canceled", "job.running", "job.pruning_step",
    }  # fmt: skip
    bodies = {"job.running": "WebhookRunningEvent", "job.pruning_step": "WebhookPruningStepEvent"}
    for name, item in hooks.items():
        op = item["post"]
        headers = {p["name"]: p for p in op["parameters"] if p["in"] == "header"}
        assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}, name
        assert all(h["required"] for h in headers.values())
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{bodies.get(name, 'WebhookEvent')}"}
        assert "422" not in op["responses"]
    event = doc["components"]["schemas"]["WebhookEvent"]
    assert set(event["required"]) == {"type", "timestamp", "data"}
    assert event["properties"]["type"]["enum"] == ["job.succeeded", "job.failed", "job.canceled"]
    data = doc["components"]["schemas"]["WebhookJobData"]
    assert {"job_id", "status", "error_code"} <= set(data["properties"])


def test_webhook_routes_are_not_served(client: TestClient) -> None:
    assert client.post("/job.succeeded", json={}).status_code == 404


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled"])
def test_the_sent_payload_matches_the_documented_event(status: str) -> None:
    outbox = pytest.importorskip("app.services.webhook_outbox")
    now = datetime.now(UTC)
    job = Job(
        id=uuid.uuid4(), status=status, error_code="oom" if status == "failed" else None,
        error_message=None, finished_at=now, metrics={"sparsity": 0.5, "nested": {"a": 1}},
    )  # fmt: skip
    event = WebhookEvent.model_validate(outbox.payload(job, now))
    assert event.type == f"job.{status}" and event.data.job_id == job.id
