"""The change listener against the real PostgreSQL (the migrated test database): a committed
update evicts the job from every cache; a killed listener connection switches the cache off
until it reconnects."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, delete, text, update
from sqlalchemy.orm import Session

from app.db.models import ApiKey, Job, JobEvent, Tenant
from app.schemas.jobs import JobOut
from app.services import jobs as service
from app.services.job_cache import JobCache
from app.services.job_notify import APPLICATION_NAME, JobChangeListener, libpq_url
from app.tenancy import Caller
from tests.app.services.test_job_cache import job_out
from tests.factories.jobs import make_job
from tests.factories.tenants import make_api_key


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def committed(pg_engine: Engine) -> Iterator[Session]:
    """A session whose commits are real (the listener only hears committed changes); what
    it made is deleted afterwards."""
    session = Session(pg_engine, expire_on_commit=False)
    tenants: list[uuid.UUID] = []
    session.info["tenants"] = tenants
    try:
        yield session
    finally:
        session.rollback()
        for tenant_id in tenants:
            jobs = select_jobs(session, tenant_id)
            session.execute(delete(JobEvent).where(JobEvent.job_id.in_(jobs)))
            session.execute(delete(Job).where(Job.tenant_id == tenant_id))
            session.execute(delete(ApiKey).where(ApiKey.tenant_id == tenant_id))
            session.execute(delete(Tenant).where(Tenant.id == tenant_id))
        session.commit()
        session.close()


def select_jobs(session: Session, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    return list(session.scalars(text("SELECT id FROM job WHERE tenant_id = :t"), {"t": tenant_id}))


@pytest.fixture
def listening(pg_url: str) -> Iterator[tuple[JobCache, JobChangeListener]]:
    cache = JobCache(60.0)
    listener = JobChangeListener(libpq_url(pg_url), cache, retry_s=0.1)
    listener.start()
    assert listener.connected.wait(10)
    try:
        yield cache, listener
    finally:
        listener.stop()


def test_a_committed_change_evicts_the_job(
    committed: Session, listening: tuple[JobCache, JobChangeListener]
) -> None:
    cache, _ = listening
    issued = make_api_key(committed, f"notify-{uuid.uuid4().hex[:8]}")
    committed.commit()
    committed.info["tenants"].append(issued.tenant_id)
    job = make_job(committed, issued.tenant_id)
    caller = Caller(tenant_id=issued.tenant_id)
    first = service.read(committed, str(job.id), caller, cache)
    committed.commit()
    assert cache.get(job.id, caller) == first
    # The worker (another connection) moves the job on.
    committed.execute(update(Job).where(Job.id == job.id).values(progress=0.5, status="running"))
    committed.commit()
    assert wait_for(lambda: cache.get(job.id, caller) is None)
    again: JobOut = service.read(committed, str(job.id), caller, cache)
    committed.commit()
    assert again.progress == 0.5 and again.status == "running"
    assert cache.get(job.id, caller) == again


def test_a_lost_listener_connection_turns_the_cache_off_until_it_is_back(
    committed: Session, listening: tuple[JobCache, JobChangeListener]
) -> None:
    cache, listener = listening
    assert cache.live and listener.connections == 1
    cache.store(cache.generation(), uuid.uuid4(), stale := job_out(uuid.uuid4()))
    committed.execute(
        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
        {"n": APPLICATION_NAME},
    )
    committed.commit()
    # Whatever it held may have missed a notification: it is gone, even once reconnected.
    assert wait_for(lambda: listener.connections == 2 and cache.live)
    assert len(cache) == 0
    assert cache.get(stale.id, Caller(tenant_id=uuid.uuid4(), is_admin=True)) is None
