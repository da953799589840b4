"""A running job's time left (eta_at, eta_seconds) in GET /v1/jobs/{id} and the list, from
telemetry events in the database; the telemetry kind in the events page and the docs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job, JobEvent
from app.services.api_keys import IssuedKey
from tests.factories.jobs import make_job


def running_job(session: Session, tenant_id: Any, *, started_ago: float = 60.0) -> Job:
    job = make_job(session, tenant_id)
    job.status, job.stage = "running", "recover"
    job.started_at = utcnow() - timedelta(seconds=started_ago)
    session.commit()
    return job


def add_telemetry(
    session: Session, job: Job, *, ago: float, stage: str = "recover", **data: Any
) -> datetime:
    """A telemetry event written `ago` seconds ago (numbered by app.repositories.events)."""
    when = utcnow() - timedelta(seconds=ago)
    session.add(JobEvent(job_id=job.id, kind="telemetry", stage=stage, progress=0.4,
                         data=data, created_at=when))  # fmt: skip
    session.commit()
    return when


def eta(client: TestClient, job: Job) -> tuple[datetime | None, float | None]:
    body = client.get(f"/v1/jobs/{job.id}").json()
    at = datetime.fromisoformat(body["eta_at"]) if body["eta_at"] is not None else None
    return at, body["eta_seconds"]


def test_a_running_job_tells_its_training_time_left(
    client: TestClient, db_session: Session, api_key: IssuedKey
) -> None:
    job = running_job(db_session, api_key.tenant_id)
    assert eta(client, job) == (None, None)  # nothing measured yet
    add_telemetry(db_session, job, ago=120.0, step=10, remaining_steps=500,
                  stage_steps_per_s=5.0)  # fmt: skip
    assert eta(client, job) == (None, None)  # an earlier attempt's measurement
    add_telemetry(db_session, job, ago=5.0, step=50, remaining_steps=400,
                  stage_steps_per_s=None)  # fmt: skip
    assert eta(client, job) == (None, None)  # this attempt's, but no rate yet
    when = add_telemetry(db_session, job, ago=10.0, step=100, remaining_steps=300,
                         stage_steps_per_s=5.0)  # fmt: skip
    at, seconds = eta(client, job)
    assert at == when + timedelta(seconds=60)  # 300 steps at 5 steps/s after the event
    assert seconds is not None and 45 <= seconds <= 50
    listed = client.get("/v1/jobs").json()["items"]
    assert [j["eta_at"] for j in listed if j["id"] == str(job.id)] == [
        client.get(f"/v1/jobs/{job.id}").json()["eta_at"]
    ]
    page = client.get(f"/v1/jobs/{job.id}/events").json()["items"]
    shown = [e for e in page if e["kind"] == "telemetry"]
    assert [e["data"]["step"] for e in shown] == [10, 50, 100] and shown[-1]["stage"] == "recover"
    # between training stages the steps left wait: counted from now
    job.stage = "evaluate_dense"
    db_session.commit()
    at, seconds = eta(client, job)
    assert at is not None and at > when + timedelta(seconds=60)
    assert seconds is not None and 59 <= seconds <= 60


def test_a_job_that_is_not_running_has_no_estimate(
    client: TestClient, db_session: Session, api_key: IssuedKey
) -> None:
    queued = make_job(db_session, api_key.tenant_id)
    assert eta(client, queued) == (None, None)
    done = running_job(db_session, api_key.tenant_id)
    add_telemetry(db_session, done, ago=1.0, remaining_steps=300, stage_steps_per_s=5.0)
    assert eta(client, done)[0] is not None
    done.status, done.finished_at = "succeeded", utcnow()
    db_session.commit()
    assert eta(client, done) == (None, None)


def test_the_docs_describe_the_estimate_and_the_telemetry_events(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    job = schemas["JobOut"]["properties"]
    assert "does not cover the stages that do not train" in job["eta_at"]["description"]
    assert "Null when the job is not running" in job["eta_at"]["description"]
    assert "eta_at" in job["eta_seconds"]["description"]
    kind = schemas["JobEventOut"]["properties"]["kind"]["description"]
    assert "telemetry" in kind and "SSE `event:` name" in kind
    for field in ("step", "total_steps", "loss", "learning_rate", "steps_per_s",
                  "examples_per_s", "elapsed_s", "remaining_steps"):  # fmt: skip
        assert f"`{field}`" in kind
