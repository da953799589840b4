"""The outbox's payloads: every timestamp in RFC 3339 UTC with its zone (a naive datetime, as
SQLite hands them back, is UTC), artifacts_url under PUBLIC_BASE_URL, and the pruning step's
payload read from its metrics event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from app.db.models import Job
from app.schemas.webhook_events import (
    WebhookEvent,
    WebhookPruningStepEvent,
    WebhookRunningEvent,
)
from app.services import webhook_outbox as outbox
from app.settings import Settings

NAIVE = datetime(2026, 12, 9, 10, 11, 12, 345000)  # SQLite's: UTC without a zone


def job(**over: object) -> Job:
    values: dict[str, object] = {
        "id": uuid.uuid4(), "status": "succeeded", "error_code": None, "error_message": None,
        "metrics": {}, "attempts": 1, "webhook_url": "https://example.com/h",
        "webhook_events": ["job.succeeded"],
    }  # fmt: skip
    return Job(**{**values, **over})


def test_naive_timestamps_are_written_as_utc() -> None:
    body = outbox.payload(job(finished_at=NAIVE), NAIVE)
    assert body["timestamp"] == "2026-12-09T10:11:12.345000Z"
    assert body["data"]["finished_at"] == "2026-12-09T10:11:12.345000Z"
    event = WebhookEvent.model_validate(body)
    assert event.timestamp == NAIVE.replace(tzinfo=UTC)


def test_aware_timestamps_are_moved_to_utc() -> None:
    east = NAIVE.replace(tzinfo=timezone(timedelta(hours=2)))
    running = outbox.running_payload(job(status="running", started_at=east), east)
    assert running["timestamp"] == "2026-12-09T08:11:12.345000Z"
    assert running["data"]["started_at"] == "2026-12-09T08:11:12.345000Z"
    WebhookRunningEvent.model_validate(running)


def test_artifacts_url_joins_the_public_base_url() -> None:
    j = job(finished_at=NAIVE)
    assert outbox.payload(j, NAIVE)["data"]["artifacts_url"] == f"/v1/jobs/{j.id}/artifacts"
    absolute = outbox.payload(j, NAIVE, "https://api.example.com/scalpel")
    assert absolute["data"]["artifacts_url"] == (
        f"https://api.example.com/scalpel/v1/jobs/{j.id}/artifacts"
    )


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("https://api.example.com", "https://api.example.com"),
        ("http://10.0.0.5:8000/scalpel/", "http://10.0.0.5:8000/scalpel"),
        ("  ", None),
    ],
)
def test_public_base_url_is_kept_without_its_trailing_slash(raw: str, kept: str | None) -> None:
    assert Settings(public_base_url=raw).public_base_url == kept


@pytest.mark.parametrize(
    "bad",
    ["ftp://api.example.com", "api.example.com", "https://api.example.com/?x=1",
     "https://api.example.com/#top", "https://user:pw@api.example.com", "https://"],
)  # fmt: skip
def test_public_base_url_must_be_an_http_url_without_a_query(bad: str) -> None:
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL"):
        Settings(public_base_url=bad)


def test_a_pruning_step_without_a_metric_or_a_speedup() -> None:
    j = job(status="running", webhook_events=["job.pruning_step"])
    body = outbox.pruning_step_payload(
        j, {"prune_step": 1, "step": 0, "sparsity": 0.8}, "prune", NAIVE
    )
    data = WebhookPruningStepEvent.model_validate(body).data
    assert (data.index, data.step, data.sparsity, data.speedup, data.primary_metric) == (
        1, 0, 0.8, None, None,
    )  # fmt: skip


def test_wants_needs_a_url_and_the_event() -> None:
    assert outbox.wants(job(), "job.succeeded")
    assert not outbox.wants(job(), "job.failed")
    assert not outbox.wants(job(webhook_url=None), "job.succeeded")
    # a row written without a list (before the column had a default) sends the terminal ones
    assert outbox.wants(job(webhook_events=None), "job.canceled")
    assert not outbox.wants(job(webhook_events=None), "job.running")
