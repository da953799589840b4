"""POST /v1/jobs?dry_run=true: every check of a submission, answered 200 with the resolved
spec and the memory and time estimates (with what they are made of), while nothing is
created, queued or kept under an Idempotency-Key; a refused spec gets the submission's 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import IdempotencyKey, Job, JobEvent, WebhookDelivery
from app.services import job_estimate
from tests.app.conftest import MakeClient
from tests.app.routes.test_jobs import problem, spec


def queued_messages(broker_dir: Path) -> int:
    queue = broker_dir / "queue"
    return sum(1 for p in queue.rglob("*") if p.is_file()) if queue.exists() else 0


def written(db: Session) -> dict[str, int]:
    return {
        model.__tablename__: db.scalar(select(func.count()).select_from(model)) or 0
        for model in (Job, JobEvent, IdempotencyKey, WebhookDelivery)
    }


def test_a_dry_run_answers_the_resolved_spec_and_estimates_and_writes_nothing(
    client: TestClient, db_session: Session, settings_env: Path
) -> None:
    before = written(db_session)
    body = {**spec(), "recipe": "gmp-80", "pruning": {"sparsity": 0.75}, "name": "try"}
    r = client.post("/v1/jobs?dry_run=true", json=body, headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["dry_run"] is True and out["name"] == "try" and out["webhook"] is None
    # the recipe merged in and pinned, defaults filled: the spec as a submission stores it
    assert out["spec"]["recipe"] == "gmp-80@2"
    assert out["spec"]["pruning"]["sparsity"] == 0.75
    assert out["spec"]["pruning"]["method"] == "magnitude"
    assert out["spec"]["training"]["batch_size"] == 16
    assert "name" not in out["spec"] and "webhook_events" not in out["spec"]

    mem = out["memory_estimate"]
    terms = sum(t["bytes"] for t in mem["terms"])
    assert mem["overhead_factor"] == job_estimate.OVERHEAD
    assert mem["peak_bytes"] == pytest.approx(terms * mem["overhead_factor"], rel=1e-6)
    assert mem["budget_setting"] == "WORKER_MEMORY_BUDGET_BYTES"
    assert mem["budget_bytes"] == 8 * 1024**3 and mem["peak_bytes"] < mem["budget_bytes"]
    assert all(t["field"] for t in mem["terms"])

    time = out["time_estimate"]
    steps = {s["name"]: s for s in time["steps"]}
    assert time["seconds"] == pytest.approx(sum(s["seconds"] for s in time["steps"]))
    assert time["flops_per_s_setting"] == "ESTIMATE_TRAIN_FLOPS_PER_S"
    assert time["limit_setting"] == "JOB_TIME_LIMIT_S" and time["limit_s"] == 12 * 3600
    assert steps["recovery"]["seconds"] == pytest.approx(
        steps["recovery"]["flops"] / time["flops_per_s"]
    )
    assert "ESTIMATE_TRAIN_FLOPS_PER_S" in steps["recovery"]["source"]
    assert steps["export"]["flops"] is None
    assert "EXPORT_SECONDS_PER_PARAM" in steps["export"]["source"]

    assert written(db_session) == before  # no job, event or idempotency record
    assert queued_messages(settings_env / "broker") == 0
    # the key was not used: a real submission under it, with another body, is its first use
    real = client.post("/v1/jobs", json=spec(), headers={"Idempotency-Key": "k-1"})
    assert real.status_code == 202, real.text
    assert written(db_session)["idempotency_key"] == before["idempotency_key"] + 1
    assert queued_messages(settings_env / "broker") == 1


def test_the_estimate_follows_the_throughput_setting(make_client: MakeClient) -> None:
    slow = make_client(estimate_train_flops_per_s="1e10").post("/v1/jobs?dry_run=true", json=spec())
    fast = make_client(estimate_train_flops_per_s="1e11").post("/v1/jobs?dry_run=true", json=spec())
    assert slow.status_code == fast.status_code == 200, slow.text
    a, b = slow.json()["time_estimate"], fast.json()["time_estimate"]
    assert (a["flops_per_s"], b["flops_per_s"]) == (1e10, 1e11)
    recovery = [{s["name"]: s for s in t["steps"]}["recovery"] for t in (a, b)]
    assert recovery[0]["flops"] == recovery[1]["flops"]
    assert recovery[0]["seconds"] == pytest.approx(10 * recovery[1]["seconds"])


REFUSED: list[tuple[dict[str, Any], dict[str, str], int, str]] = [
    ({}, {"worker_memory_budget_bytes": str(2**20)}, 422, "memory_budget_exceeded"),
    ({}, {"job_time_limit_s": "1"}, 422, "time_limit_exceeded"),
    ({"model": "nope"}, {}, 404, "model_not_found"),
    ({"task": "question_answering"}, {}, 422, "task_mismatch"),
    ({"layers": {"keep": 9}}, {}, 422, "invalid_spec"),
    ({"webhook_url": "http://10.0.0.7/h"}, {}, 422, "webhook_url_refused"),
    ({"recipe": "nope"}, {}, 422, "validation_error"),
]


@pytest.mark.parametrize(("changes", "env", "status", "code"), REFUSED)
def test_a_refused_spec_gets_exactly_the_submissions_problem(
    make_client: MakeClient, db_session: Session, changes: dict[str, Any], env: dict[str, str],
    status: int, code: str,
) -> None:  # fmt: skip
    client = make_client(**env)
    body = {**spec(), **changes}
    dry = problem(client.post("/v1/jobs?dry_run=true", json=body), status, code)
    before = written(db_session)
    real = problem(client.post("/v1/jobs", json=body), status, code)
    assert written(db_session) == before
    assert {k: v for k, v in dry.items() if k != "instance"} == {
        k: v for k, v in real.items() if k != "instance"
    }


def test_dry_run_is_a_declared_parameter(client: TestClient, db_session: Session) -> None:
    before = written(db_session)
    body = problem(client.post("/v1/jobs?dryrun=true", json=spec()), 422, "unknown_parameter")
    assert body["field"] == "dryrun" and "dry_run" in body["detail"]
    problem(client.post("/v1/jobs?dry_run=maybe", json=spec()), 422, "validation_error")
    assert written(db_session) == before
    assert client.post("/v1/jobs?dry_run=false", json=spec()).status_code == 202


def test_a_dry_run_shows_the_webhook_it_would_have(client: TestClient) -> None:
    body = {**spec(webhook_url="https://example.com/h"), "webhook_events": ["job.running"]}
    out = client.post("/v1/jobs?dry_run=true", json=body).json()
    assert out["webhook"]["url"] == "https://example.com/h"
    assert out["webhook"]["events"] == ["job.running"]
    assert out["webhook"]["notice"].startswith("no signing secret: POST /v1/webhook-secrets")
    assert out["spec"]["webhook_url"] == "https://example.com/h"


def test_the_dry_run_answer_is_documented(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]
    assert "dry_run" in {p["name"] for p in op["parameters"]}
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/JobDryRun"}
