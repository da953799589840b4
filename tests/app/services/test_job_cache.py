"""JobCache: answers only while live, per tenant, until evicted or ttl; a read that raced a
change is not stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from app.schemas.jobs import JobLinks, JobOut
from app.services.job_cache import JobCache
from app.tenancy import Caller


def job_out(job_id: uuid.UUID, progress: float = 0.0) -> JobOut:
    now = datetime.now(UTC)
    base = f"/v1/jobs/{job_id}"
    return JobOut(
        id=job_id, status="running", stage="recover", progress=progress, cancel_requested=False,
        spec={}, metrics={}, error=None, created_at=now, started_at=now, finished_at=None,
        updated_at=now, links=JobLinks(self=base, artifacts=f"{base}/artifacts",
                                       events=f"{base}/events"),
    )  # fmt: skip


T = TypeVar("T")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run on a thread of its own: a test before this one (the browser tests'
    playwright) may leave an event loop running on the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def live_cache(ttl_s: float = 30.0, clock: Clock | None = None) -> JobCache:
    cache = JobCache(ttl_s, clock=clock or Clock())
    cache.set_live(True)
    return cache


def test_nothing_is_stored_or_answered_until_live() -> None:
    cache = JobCache(30.0)
    tenant, job_id = uuid.uuid4(), uuid.uuid4()
    assert not cache.store(cache.generation(), tenant, job_out(job_id))
    assert cache.get(job_id, Caller(tenant_id=tenant)) is None
    cache.set_live(True)
    assert cache.store(cache.generation(), tenant, job_out(job_id))
    assert cache.get(job_id, Caller(tenant_id=tenant)) is not None
    cache.set_live(False)  # the listener lost its connection: everything goes
    assert len(cache) == 0 and cache.get(job_id, Caller(tenant_id=tenant)) is None


def test_another_tenant_misses_and_an_admin_hits() -> None:
    cache = live_cache()
    tenant, job_id = uuid.uuid4(), uuid.uuid4()
    cache.store(cache.generation(), tenant, job_out(job_id))
    assert cache.get(job_id, Caller(tenant_id=uuid.uuid4())) is None
    assert cache.get(job_id, Caller(tenant_id=uuid.uuid4(), is_admin=True)) is not None
    assert cache.get(job_id, Caller(tenant_id=tenant)) is not None


def test_evict_and_ttl_drop_an_entry() -> None:
    clock = Clock()
    cache = live_cache(10.0, clock)
    tenant, job_id = uuid.uuid4(), uuid.uuid4()
    caller = Caller(tenant_id=tenant)
    cache.store(cache.generation(), tenant, job_out(job_id))
    cache.evict(job_id)
    assert cache.get(job_id, caller) is None
    cache.store(cache.generation(), tenant, job_out(job_id))
    clock.now = 9.9
    assert cache.get(job_id, caller) is not None
    clock.now = 10.0
    assert cache.get(job_id, caller) is None


def test_a_read_that_raced_a_change_is_not_stored() -> None:
    cache = live_cache()
    tenant, job_id = uuid.uuid4(), uuid.uuid4()
    generation = cache.generation()  # the read starts ...
    cache.evict(job_id)  # ... the job changes (its notification arrives) ...
    assert not cache.store(generation, tenant, job_out(job_id, 0.1))  # ... the old row loses
    assert cache.get(job_id, Caller(tenant_id=tenant)) is None
    assert cache.store(cache.generation(), tenant, job_out(job_id, 0.2))
    got = cache.get(job_id, Caller(tenant_id=tenant))
    assert got is not None and got.progress == 0.2


def test_the_size_is_bounded() -> None:
    cache = JobCache(30.0, max_entries=2)
    cache.set_live(True)
    tenant = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(3)]
    for job_id in ids:
        cache.store(cache.generation(), tenant, job_out(job_id))
    assert len(cache) == 2
    assert cache.get(ids[0], Caller(tenant_id=tenant)) is None


def test_pollers_of_an_evicted_job_share_one_load() -> None:
    cache = live_cache()
    tenant, job_id = uuid.uuid4(), uuid.uuid4()
    caller = Caller(tenant_id=tenant)
    loads: list[int] = []

    async def load() -> JobOut:
        loads.append(1)
        generation = cache.generation()
        await asyncio.sleep(0.01)  # the database read
        out = job_out(job_id, 0.3)
        cache.store(generation, tenant, out)
        return out

    async def main() -> list[JobOut]:
        return await asyncio.gather(*(cache.read_through(job_id, caller, load) for _ in range(50)))

    outs = run(main)
    assert len(loads) == 1 and {o.progress for o in outs} == {0.3}
    # Another tenant's waiter is not served from the leader's answer: it loads for itself.
    other = Caller(tenant_id=uuid.uuid4())
    cache.evict(job_id)

    async def mixed() -> None:
        await asyncio.gather(cache.read_through(job_id, caller, load),
                             cache.read_through(job_id, other, load))  # fmt: skip

    run(mixed)
    assert len(loads) == 3


def test_a_failed_load_is_not_shared_and_not_cached() -> None:
    cache = live_cache()
    job_id = uuid.uuid4()
    calls: list[int] = []

    async def load() -> JobOut:
        calls.append(1)
        await asyncio.sleep(0.01)
        raise LookupError("no such job")

    async def main() -> list[object]:
        reads = (cache.read_through(job_id, Caller(tenant_id=uuid.uuid4()), load) for _ in range(3))
        return await asyncio.gather(*reads, return_exceptions=True)

    results = run(main)
    assert all(isinstance(r, LookupError) for r in results) and len(calls) == 3
    assert len(cache) == 0
