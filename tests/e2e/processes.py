"""Helpers for fault tests on real processes: a fresh PostgreSQL database and Redis db, rows
made straight in the database (no API key needed), and waiting on the job row."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, create_engine, select, update
from sqlalchemy.orm import Session

from alembic import command
from app.db.base import utcnow
from app.db.models import Job, JobEvent, UploadedModel
from app.queue import COMPRESS_TASK, make_celery
from app.repositories import jobs as jobs_repo
from app.services.api_keys import tenant_named
from app.settings import Settings
from app.storage import LocalStore
from tests.conftest import alembic_config, create_database, drop_database
from tests.factories.tiny_bert import archive, write_tiny_bert


@dataclass
class Backing:
    db_url: str
    redis_url: str
    engine: Engine


@contextmanager
def migrated_database(prefix: str = "scalpel_faults") -> Iterator[tuple[str, Engine]]:
    """A PostgreSQL database of its own, migrated to head (its URL and an engine), dropped
    afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    db_url = create_database(name)
    try:
        command.upgrade(alembic_config(db_url), "head")
        engine = create_engine(db_url)
        try:
            yield db_url, engine
        finally:
            engine.dispose()
    finally:
        drop_database(name)


@contextmanager
def backing_services(tmp_path: Path, redis_db: int) -> Iterator[Backing]:
    """A migrated database of its own and an emptied Redis db, dropped afterwards."""
    with migrated_database() as (db_url, engine):
        redis_url = f"redis://127.0.0.1:6379/{redis_db}"
        redis.Redis.from_url(redis_url).flushdb()
        try:
            yield Backing(db_url, redis_url, engine)
        finally:
            redis.Redis.from_url(redis_url).flushdb()


def tiny_spec(model_id: str, steps: int = 4) -> dict[str, Any]:
    """A job spec that runs in seconds on a tiny BERT (the tweets corpus, 64 examples)."""
    return {
        "model": model_id,
        "dataset": {"name": "tweets", "max_train_examples": 64, "max_eval_examples": 32,
                    "max_length": 32},
        "pruning": {"method": "magnitude", "sparsity": 0.5},
        "quantization": {"method": "none"},
        "training": {"max_steps": steps, "recovery_max_steps": 4, "batch_size": 8},
    }  # fmt: skip


def dispatched_job(engine: Engine, redis_url: str, spec: dict[str, Any], tenant: str) -> Job:
    """A queued job handed to the broker as the API does after its commit (published, then
    dispatched_at set); returns its row."""
    job_id = insert_job(engine, spec, tenant)
    publish(redis_url, job_id)
    with Session(engine) as s:
        s.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))
        s.commit()
    return job_row(engine, job_id)


def insert_tiny_model(engine: Engine, tmp_path: Path, storage_dir: Path, tenant: str) -> str:
    """An uploaded tiny BERT of the tenant's: archive in the worker's store, row committed."""
    folder = write_tiny_bert(tmp_path / "tiny")
    stored = LocalStore(storage_dir).put_file(archive(folder, tmp_path / "tiny.tar.gz"))
    with Session(engine) as s:
        model = UploadedModel(
            id=uuid.uuid4(), tenant_id=tenant_named(s, tenant).id, name="tiny",
            filename="tiny.tar.gz", archive_format="tar.gz", size_bytes=stored.size_bytes,
            sha256=stored.sha256, storage_key=stored.key, architecture="BertModel",
            num_labels=None, num_parameters=1,
            config=json.loads((folder / "config.json").read_text()),
        )  # fmt: skip
        s.add(model)
        s.commit()
        return str(model.id)


def insert_job(engine: Engine, spec: dict[str, Any], tenant: str) -> uuid.UUID:
    """A queued, undispatched job, committed as the API would."""
    with Session(engine) as s:
        job = jobs_repo.create_queued(s, tenant_named(s, tenant).id, spec, None)
        s.commit()
        return job.id


def publish(redis_url: str, job_id: uuid.UUID) -> None:
    celery = make_celery(Settings(redis_url=redis_url), "scalpel-test")
    celery.send_task(COMPRESS_TASK, args=[str(job_id)])
    celery.close()


def job_row(engine: Engine, job_id: uuid.UUID) -> Job:
    with Session(engine, expire_on_commit=False) as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def status_events(engine: Engine, job_id: uuid.UUID) -> list[tuple[str | None, str | None]]:
    with Session(engine) as s:
        rows = s.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "status")
            .order_by(JobEvent.id)
        )  # fmt: skip
        return [(e.status, e.message) for e in rows]


def wait_row(
    engine: Engine, job_id: uuid.UUID, until: Callable[[Job], bool], logs: list[Path],
    timeout_s: float = 300, what: str = "the expected state",
) -> Job:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    job = job_row(engine, job_id)
    while time.monotonic() < deadline:
        job = job_row(engine, job_id)
        if until(job):
            return job
        time.sleep(0.2)
    tails = "\n".join(f"== {p.name}\n{p.read_text()[-4000:]}" for p in logs if p.exists())
    raise AssertionError(
        f"job {job_id} ({job.status}, attempts {job.attempts}) never reached {what} in "
        f"{timeout_s} s\n{tails}"
    )
