"""Per-job event numbers under concurrency, on the real PostgreSQL with real commits: writers
on separate connections (the API, a worker, the reaper) racing on one job still number its
events 1..n without a gap or a duplicate."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from app.db.models import ApiKey, Job, JobEvent, Tenant
from app.repositories import jobs as jobs_repo
from tests.factories.tenants import make_api_key

WRITERS, EACH = 6, 15
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def committed_job(pg_engine: Engine) -> Iterator[uuid.UUID]:
    with Session(pg_engine) as s:
        issued = make_api_key(s, f"seq-{uuid.uuid4().hex[:8]}")
        job = jobs_repo.create_queued(s, issued.tenant_id, {"model": "minilm-l6"}, None)
        s.commit()
        tenant_id, job_id = issued.tenant_id, job.id
    try:
        yield job_id
    finally:
        with Session(pg_engine) as s:
            s.execute(delete(Job).where(Job.tenant_id == tenant_id))  # cascades to events
            s.execute(delete(ApiKey).where(ApiKey.tenant_id == tenant_id))
            s.execute(delete(Tenant).where(Tenant.id == tenant_id))
            s.commit()


def test_concurrent_writers_number_one_jobs_events_densely(
    pg_engine: Engine, committed_job: uuid.UUID
) -> None:
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(EACH):
                with Session(pg_engine) as s:
                    jobs_repo.add_event(s, committed_job, kind="progress", message=f"{n}.{i}")
                    s.commit()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with Session(pg_engine) as s:
        rows = s.execute(
            select(JobEvent.id, JobEvent.seq).where(JobEvent.job_id == committed_job)
        ).all()
    seqs = sorted(seq for _, seq in rows)
    assert seqs == list(range(1, WRITERS * EACH + 2))  # + the queued event
    # numbered in commit order: the internal ids (a global sequence) agree with seq
    assert [seq for _, seq in sorted(rows)] == seqs


NUMBERS_EVENTS = """
import importlib, sys
from sqlalchemy import event
from app.db.models import JobEvent
assert not JobEvent.__mapper__.dispatch.before_insert, "the models file registers a hook"
importlib.import_module(sys.argv[1])
from app.repositories.events import number_event
assert event.contains(JobEvent, "before_insert", number_event), sys.argv[1]
"""


@pytest.mark.parametrize("writer", [
    "app.repositories.jobs", "app.repositories.recovery", "worker.job_store", "app.db.session",
])  # fmt: skip
def test_every_writer_brings_the_numbering_and_the_models_file_none(writer: str) -> None:
    """Only repositories query the database: the models file registers nothing, and each
    module that writes events (or makes the application's sessions) registers the numbering
    repository's hook on import, in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", NUMBERS_EVENTS, writer], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
