"""The reaper and the outbox on the real PostgreSQL, in the test's rolled-back transaction:
lost running jobs are requeued (or failed after max_attempts), live ones are left alone, and
queued jobs the broker never got are published once."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.locks import advisory_key
from app.db.models import Job, JobEvent
from app.queue import COMPRESS_TASK, make_celery
from app.services.reaper import ReaperLoop, reap_once
from app.settings import Settings
from tests.factories.jobs import make_job
from tests.factories.redis_server import RedisServer, redis_server
from tests.factories.tenants import default_tenant_id


def settings(**over: Any) -> Settings:
    values: dict[str, Any] = {
        "heartbeat_stale_s": 60, "max_attempts": 3, "dispatch_grace_s": 10,
        "sweep_interval_s": 0,  # the sweeper has its own tests (tests/app/services/test_sweeper)
    }  # fmt: skip
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


# --- a Redis broker that lost its messages (a redis-server of the test's own) -------------


@pytest.fixture
def scratch_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


class CeleryBroker:
    """Publishes for real to the scratch Redis, as app.queue.enqueue_compress does."""

    def __init__(self, s: Settings) -> None:
        self.celery = make_celery(s, "scalpel-test")
        self.queue = s.compress_queue
        self.sent: list[uuid.UUID] = []

    def __call__(self, job_id: uuid.UUID) -> None:
        self.celery.send_task(COMPRESS_TASK, args=[str(job_id)], queue=self.queue)
        self.sent.append(job_id)


def queued_ids(server: RedisServer) -> list[str]:
    raws = server.client().lrange("compress", 0, -1)
    return [json.loads(base64.b64decode(json.loads(r)["body"]))[0][0] for r in raws]


def test_redis_restarted_empty_redispatches_within_one_pass(
    db_session: Session, factory: Callable[[], Session], scratch_redis: RedisServer
) -> None:
    s = settings(redis_url=scratch_redis.url, broker_loss_grace_s=5)
    publish = CeleryBroker(s)
    lost = job(db_session, dispatched_at=utcnow() - timedelta(seconds=30))
    publish(lost.id)  # handed over, as the API does, before the crash
    recent = job(db_session, dispatched_at=utcnow())  # within the grace: not judged yet
    publish.sent.clear()

    held = reap_once(factory, s, publish)  # the message is there: nothing to do
    assert held.redispatched == [] and publish.sent == []

    before = scratch_redis.run_id()
    scratch_redis.restart_empty()
    assert scratch_redis.run_id() != before and queued_ids(scratch_redis) == []
    report = reap_once(factory, s, publish)
    assert report.redispatched == [lost.id] and report.broker_restarted
    assert queued_ids(scratch_redis) == [str(lost.id)]
    row = fresh(db_session, lost.id)
    assert row.status == "queued" and row.dispatched_at > utcnow() - timedelta(seconds=5)  # type: ignore[operator]
    assert recent.id not in report.redispatched
    # The new message is held now: no second copy on the next pass.
    assert reap_once(factory, s, publish).redispatched == []
    assert publish.sent == [lost.id]


def dispatched_job(db: Session, server: RedisServer) -> tuple[Settings, CeleryBroker, Job]:
    """Settings on the scratch Redis (no loss grace), its publisher, and a queued job whose
    message the broker holds."""
    s = settings(redis_url=server.url, broker_loss_grace_s=0)
    publish = CeleryBroker(s)
    row = job(db, dispatched_at=utcnow() - timedelta(seconds=1))
    publish(row.id)
    publish.sent.clear()
    return s, publish, row


def take_unacked(client: Any) -> None:
    """What a worker does on taking a message: kombu keeps it in the `unacked` hash."""
    raw = client.rpop("compress")
    assert raw is not None
    client.hset("unacked", "tag-1", json.dumps([json.loads(raw), "", "compress"]))


@pytest.mark.parametrize(("hold", "lose"), [
    # FLUSHALL keeps the run_id: the missing message alone tells.
    (lambda client: None, lambda client: client.flushall()),
    # A taken, unacked message means that worker has the job; then the worker died with it,
    # and Redis with it.
    (take_unacked, lambda client: client.delete("unacked")),
], ids=["flushed", "taken-then-lost"])  # fmt: skip
def test_a_message_lost_without_a_restart_is_redispatched(
    db_session: Session, factory: Callable[[], Session], scratch_redis: RedisServer,
    hold: Callable[[Any], None], lose: Callable[[Any], None],
) -> None:  # fmt: skip
    s, publish, lost = dispatched_job(db_session, scratch_redis)
    client = scratch_redis.client()
    hold(client)
    assert reap_once(factory, s, publish).redispatched == []
    lose(client)
    report = reap_once(factory, s, publish)
    assert report.redispatched == [lost.id] and not report.broker_restarted
    assert queued_ids(scratch_redis) == [str(lost.id)]


def test_unreadable_broker_content_redispatches_nothing(
    db_session: Session, factory: Callable[[], Session], scratch_redis: RedisServer
) -> None:
    s, publish, _ = dispatched_job(db_session, scratch_redis)
    job(db_session, dispatched_at=utcnow() - timedelta(seconds=1))  # its message: garbage
    scratch_redis.client().lpush("compress", b"not json")
    assert reap_once(factory, s, publish).redispatched == []
    assert publish.sent == []


def test_messages_are_read_only_when_the_counts_do_not_add_up(
    db_session: Session, factory: Callable[[], Session], scratch_redis: RedisServer
) -> None:
    """A pass over a broker that holds a message per dispatched job reads no message (no
    LRANGE of up to 4 x 100k messages in every worker's every pass): the run id and the
    lengths tell. One message fewer than jobs, and the messages are read."""
    s, publish, first = dispatched_job(db_session, scratch_redis)
    second = job(db_session, dispatched_at=utcnow() - timedelta(seconds=1))
    publish(second.id)
    publish.sent.clear()
    client = scratch_redis.client()
    assert reap_once(factory, s, publish).redispatched == []  # notes the run id
    client.config_resetstat()
    assert reap_once(factory, s, publish).redispatched == []
    stats = client.info("commandstats")
    assert "cmdstat_llen" in stats and "cmdstat_hlen" in stats, stats
    assert "cmdstat_lrange" not in stats and "cmdstat_hvals" not in stats, stats
    client.rpop("compress")  # the first job's message (kombu pushes left, takes right)
    client.config_resetstat()
    report = reap_once(factory, s, publish)
    assert "cmdstat_lrange" in client.info("commandstats")
    assert report.redispatched == [first.id] and publish.sent == [first.id]


def test_sweeper_runs_in_the_loop(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path
) -> None:
    stale = tmp_path / "work" / "uploads" / "tmpkilled"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an upload")
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    s = settings(work_dir=tmp_path / "work", storage_dir=tmp_path / "store",
                 sweep_interval_s=3600, sweep_grace_s=3600)  # fmt: skip
    loop = ReaperLoop(0.05, factory=factory, settings=s, publish=Broker())
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while stale.exists() and time.monotonic() < deadline:
            loop.thread.join(0.05)
    finally:
        loop.stop()
    assert not stale.exists()
