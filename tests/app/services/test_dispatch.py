"""A submitted job really reaches the broker (Redis), and a broker that is down leaves the job
queued and undispatched without failing the request."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy.orm import Session

from app.db.models import Job
from app.queue import COMPRESS_TASK
from tests.app.conftest import MakeClient

REDIS_URL = "redis://127.0.0.1:6379/15"
SPEC = {"model": "minilm-l6", "dataset": {"name": "tweets"}}


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_URL)
    r.delete("compress")
    yield r
    r.delete("compress")
    r.close()


def test_submitted_job_reaches_the_compress_queue(
    make_client: MakeClient, db_session: Session, redis_db: redis.Redis
) -> None:
    client = make_client(redis_url=REDIS_URL)
    r = client.post("/v1/jobs", json=SPEC)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    messages = redis_db.lrange("compress", 0, -1)
    assert len(messages) == 1
    message = json.loads(messages[0])
    assert message["headers"]["task"] == COMPRESS_TASK
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [job_id]
    assert kwargs == {}
    job = db_session.get(Job, uuid.UUID(job_id))
    assert job is not None
    db_session.refresh(job)
    assert job.dispatched_at is not None
    assert job.status == "queued"


def test_broker_down_leaves_job_queued_and_undispatched(
    make_client: MakeClient, db_session: Session
) -> None:
    client = make_client(redis_url="redis://127.0.0.1:1/0")
    r = client.post("/v1/jobs", json=SPEC)
    assert r.status_code == 202, r.text
    job = db_session.get(Job, uuid.UUID(r.json()["id"]))
    assert job is not None
    db_session.refresh(job)
    assert job.status == "queued"
    assert job.dispatched_at is None
