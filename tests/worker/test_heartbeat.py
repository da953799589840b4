"""The running worker's heartbeat: a thread that beats until the job ends, and the row it
writes (only while the job is running). Claiming a job starts its heartbeat."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job
from tests.factories.jobs import make_job
from tests.factories.tenants import default_tenant_id
from worker.heartbeat import Heartbeat
from worker.job_store import JobStore


def store(db: Session) -> JobStore:
    return JobStore(lambda: Session(bind=db.connection(), join_transaction_mode="create_savepoint"))


def test_beats_every_interval_until_stopped() -> None:
    beats: list[float] = []
    with Heartbeat(lambda: beats.append(time.monotonic()) is None, 0.02) as hb:
        deadline = time.monotonic() + 5
        while len(beats) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    count = len(beats)
    time.sleep(0.1)
    assert count >= 3 and len(beats) == count and hb.beats == count
    assert not any(t.name == "heartbeat" for t in threading.enumerate())


def test_errors_are_survived_and_a_finished_job_stops_it() -> None:
    calls: list[int] = []

    def beat() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database away")
        return len(calls) < 3

    hb = Heartbeat(beat, 0.01)
    hb.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(calls) == 3  # stopped by itself once the job was no longer running
    hb.stop()


def test_zero_interval_starts_no_thread() -> None:
    with Heartbeat(lambda: True, 0) as hb:
        pass
    assert hb.beats == 0


def test_claim_and_heartbeat_write_heartbeat_at(db_session: Session) -> None:
    jobs = store(db_session)
    job_id = make_job(db_session, default_tenant_id(db_session)).id
    assert not jobs.heartbeat(job_id)  # queued: nothing to prove
    claim = jobs.claim(job_id, "host:1", max_attempts=3)
    assert claim.job is not None
    first = fresh(db_session, job_id).heartbeat_at
    assert first is not None and first > utcnow() - timedelta(seconds=30)
    time.sleep(0.01)
    assert jobs.heartbeat(job_id)
    assert fresh(db_session, job_id).heartbeat_at > first  # type: ignore[operator]
    jobs.finish(job_id, "succeeded")
    assert not jobs.heartbeat(job_id)


def test_connection_bound_sessions_are_not_thread_safe(db_session: Session) -> None:
    assert not store(db_session).thread_safe()


def fresh(db: Session, job_id: uuid.UUID) -> Job:
    db.expire_all()
    row = db.get(Job, job_id)
    assert row is not None
    return row
