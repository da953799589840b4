"""The reaper and the outbox on the real PostgreSQL, in the test's rolled-back transaction:
lost running jobs are requeued (or failed after max_attempts), live ones are left alone, and
queued jobs the broker never got are published once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.locks import advisory_key
from app.db.models import Job, JobEvent
from app.services.reaper import ReaperLoop, reap_once
from app.settings import Settings
from tests.factories.jobs import make_job
from tests.factories.tenants import default_tenant_id


def settings(**over: Any) -> Settings:
    values: dict[str, Any] = {"heartbeat_stale_s": 60, "max_attempts": 3, "dispatch_grace_s": 10}
    return Settings(**{**values, **over})


@pytest.fixture
def factory(db_session: Session) -> Callable[[], Session]:
    def _factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    return _factory


class Broker:
    def __init__(self, *, up: bool = True) -> None:
        self.up = up
        self.sent: list[uuid.UUID] = []

    def __call__(self, job_id: uuid.UUID) -> None:
        if not self.up:
            raise ConnectionError("broker down")
        self.sent.append(job_id)


def job(db: Session, **fields: Any) -> Job:
    """A committed job (queued and dispatched unless told otherwise)."""
    row = make_job(db, default_tenant_id(db))
    values: dict[str, Any] = {"dispatched_at": utcnow(), **fields}
    for name, value in values.items():
        setattr(row, name, value)
    db.commit()
    return row


def running(db: Session, *, beat_s_ago: float, attempts: int = 1) -> Job:
    now = utcnow()
    return job(
        db, status="running", attempts=attempts, worker_id="host:1",
        started_at=now - timedelta(seconds=beat_s_ago + 5),
        heartbeat_at=now - timedelta(seconds=beat_s_ago),
    )  # fmt: skip


def fresh(db: Session, job_id: uuid.UUID) -> Job:
    db.expire_all()
    row = db.get(Job, job_id)
    assert row is not None
    return row


def statuses(db: Session, job_id: uuid.UUID) -> list[tuple[str | None, str | None]]:
    events = db.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "status")
        .order_by(JobEvent.id)
    )  # fmt: skip
    return [(e.status, e.message) for e in events]


def test_lost_running_job_is_requeued_and_dispatched(
    db_session: Session, factory: Callable[[], Session]
) -> None:
    lost = running(db_session, beat_s_ago=120, attempts=1)
    broker = Broker()
    report = reap_once(factory, settings(), broker)
    assert lost.id in report.requeued and lost.id in report.dispatched
    assert broker.sent.count(lost.id) == 1
    row = fresh(db_session, lost.id)
    assert row.status == "queued" and row.attempts == 1 and row.dispatched_at is not None
    status, message = statuses(db_session, lost.id)[-1]
    assert status == "queued" and message and "host:1 lost" in message

    # A second pass finds nothing more to do for it.
    again = reap_once(factory, settings(), broker)
    assert lost.id not in again.requeued + again.dispatched
    assert broker.sent.count(lost.id) == 1


def test_fresh_heartbeat_is_left_alone(db_session: Session, factory: Callable[[], Session]) -> None:
    alive = running(db_session, beat_s_ago=5)
    broker = Broker()
    report = reap_once(factory, settings(), broker)
    assert alive.id not in report.requeued + report.failed + report.dispatched
    assert fresh(db_session, alive.id).status == "running"


def test_no_heartbeat_yet_counts_from_the_start(
    db_session: Session, factory: Callable[[], Session]
) -> None:
    lost = job(
        db_session, status="running", attempts=1,
        started_at=utcnow() - timedelta(seconds=300), heartbeat_at=None,
    )  # fmt: skip
    report = reap_once(factory, settings(), Broker())
    assert lost.id in report.requeued


def test_lost_too_often_fails_with_worker_lost(
    db_session: Session, factory: Callable[[], Session]
) -> None:
    lost = running(db_session, beat_s_ago=120, attempts=3)
    broker = Broker()
    report = reap_once(factory, settings(max_attempts=3), broker)
    assert lost.id in report.failed and lost.id not in broker.sent
    row = fresh(db_session, lost.id)
    assert row.status == "failed" and row.error_code == "worker_lost"
    assert row.finished_at is not None
    assert row.error_message and "started 3 times" in row.error_message


def test_stale_heartbeat_but_worker_holds_the_lock_is_not_requeued(
    db_session: Session, factory: Callable[[], Session], pg_engine: Engine
) -> None:
    """A worker whose heartbeat stalled (a long GIL-held step) but whose process is alive
    keeps its job: the advisory lock it holds on its connection says so."""
    slow = running(db_session, beat_s_ago=120)
    key = advisory_key(slow.id)
    with pg_engine.connect() as worker:
        assert worker.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        report = reap_once(factory, settings(), Broker())
        worker.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    assert slow.id in report.alive and slow.id not in report.requeued
    assert fresh(db_session, slow.id).status == "running"


def test_undispatched_job_is_published_after_the_grace(
    db_session: Session, factory: Callable[[], Session]
) -> None:
    new = job(db_session, dispatched_at=None)
    broker = Broker()
    # The API's own after-commit publish still has its chance.
    assert new.id not in reap_once(factory, settings(dispatch_grace_s=3600), broker).dispatched
    assert fresh(db_session, new.id).dispatched_at is None
    report = reap_once(factory, settings(dispatch_grace_s=0), broker)
    assert new.id in report.dispatched and broker.sent.count(new.id) == 1
    row = fresh(db_session, new.id)
    assert row.dispatched_at is not None and row.status == "queued"


def test_broker_down_keeps_jobs_undispatched(
    db_session: Session, factory: Callable[[], Session]
) -> None:
    new = job(db_session, dispatched_at=None)
    report = reap_once(factory, settings(dispatch_grace_s=0), Broker(up=False))
    assert new.id not in report.dispatched and report.undispatched >= 1
    assert fresh(db_session, new.id).dispatched_at is None
    broker = Broker()
    assert new.id in reap_once(factory, settings(dispatch_grace_s=0), broker).dispatched


def test_dispatched_long_ago_and_still_queued_is_published_again(
    db_session: Session, factory: Callable[[], Session]
) -> None:
    old = job(db_session, dispatched_at=utcnow() - timedelta(hours=7))
    recent = job(db_session, dispatched_at=utcnow() - timedelta(minutes=5))
    broker = Broker()
    report = reap_once(factory, settings(dispatch_stale_s=6 * 3600), broker)
    assert old.id in report.dispatched and recent.id not in report.dispatched
    assert fresh(db_session, old.id).dispatched_at > utcnow() - timedelta(minutes=1)  # type: ignore[operator]


def test_finished_jobs_are_never_touched(
    db_session: Session, factory: Callable[[], Session]
) -> None:
    old = utcnow() - timedelta(hours=8)
    done = job(db_session, status="succeeded", dispatched_at=None, heartbeat_at=old,
               started_at=old, finished_at=old)  # fmt: skip
    report = reap_once(factory, settings(dispatch_grace_s=0), Broker())
    assert done.id not in report.requeued + report.failed + report.dispatched
    assert fresh(db_session, done.id).status == "succeeded"


def test_loop_runs_passes_until_stopped(
    db_session: Session, factory: Callable[[], Session]
) -> None:
    lost = running(db_session, beat_s_ago=120)
    broker = Broker()
    loop = ReaperLoop(0.05, factory=factory, settings=settings(), publish=broker)
    loop.start()
    try:
        deadline = utcnow() + timedelta(seconds=10)
        while lost.id not in broker.sent and utcnow() < deadline:
            loop.thread.join(0.05)
    finally:
        loop.stop()
    assert lost.id in broker.sent and not loop.thread.is_alive()
