"""Job status reads kept in memory, dropped the moment the row changes.

Polling ``GET /v1/jobs/{id}`` is the API's hottest call, and a job's row changes a few times a
second at most. An API process on PostgreSQL listens on the ``scalpel_job_changed`` channel,
which a trigger on ``job`` notifies with the job id after every committed update or delete
(migration 0006; app/services/job_notify.py runs the listener): an entry lives until its job
changes, or ``ttl_s`` as a backstop. The cache only answers while the listener is connected;
when the connection drops, it is emptied and switched off until the listener is back, so a
lost notification cannot leave a stale entry behind. A read that raced with a change is not
stored (every eviction bumps a generation the read compares before storing).

A change evicts an entry that every poller of the job wants at once: ``read_through`` lets
one of them read the database while the others wait for its answer (one query per change,
not one per poller, so a progress update does not turn into a burst of queries).

What a reader may see: a change committed by another process a few milliseconds before, until
its notification arrives. Tenancy is checked on every hit, as on a database read.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from app.schemas.jobs import JobOut
from app.tenancy import Caller


class JobCache:
    def __init__(
        self, ttl_s: float, *, max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[uuid.UUID, tuple[float, uuid.UUID, JobOut]] = OrderedDict()
        self._generation = 0
        self._live = False
        self._loading: dict[uuid.UUID, asyncio.Future[None]] = {}

    @property
    def live(self) -> bool:
        """Whether the cache answers: the change listener is connected."""
        return self._live

    def set_live(self, live: bool) -> None:
        """The listener connected (True) or lost its connection (False: everything goes)."""
        with self._lock:
            self._live = live
            self._generation += 1
            self._entries.clear()

    def get(self, job_id: uuid.UUID, caller: Caller) -> JobOut | None:
        """The job as last read, if unchanged since and the caller may see it."""
        if not self._live or self.ttl_s <= 0:
            return None
        entry = self._entries.get(job_id)
        if entry is None or self._clock() >= entry[0]:
            return None
        _, tenant_id, out = entry
        if caller.scope is not None and caller.scope != tenant_id:
            return None  # another tenant's job: the database read answers 404
        return out

    def generation(self) -> int:
        """Taken before a database read; store() refuses the read if anything changed since."""
        return self._generation

    def store(self, generation: int, tenant_id: uuid.UUID, out: JobOut) -> bool:
        if not self._live or self.ttl_s <= 0:
            return False
        with self._lock:
            if generation != self._generation:
                return False
            self._entries[out.id] = (self._clock() + self.ttl_s, tenant_id, out)
            self._entries.move_to_end(out.id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return True

    async def read_through(
        self, job_id: uuid.UUID | None, caller: Caller, load: Callable[[], Awaitable[JobOut]]
    ) -> JobOut:
        """The cached job, or load() (which reads the database and stores its answer); while
        one caller loads a job, others wanting it wait and take what it stored. A waiter
        the stored entry does not serve (another tenant, a store refused after a race, a
        failed load) loads for itself."""
        if job_id is None:
            return await load()
        if (hit := self.get(job_id, caller)) is not None:
            return hit
        if not self._live:
            return await load()
        pending = self._loading.get(job_id)
        if pending is not None:
            await asyncio.shield(pending)
            if (hit := self.get(job_id, caller)) is not None:
                return hit
            return await load()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[job_id] = done
        try:
            return await load()
        finally:
            del self._loading[job_id]
            done.set_result(None)

    def evict(self, job_id: uuid.UUID) -> None:
        with self._lock:
            self._generation += 1
            self._entries.pop(job_id, None)

    def __len__(self) -> int:
        return len(self._entries)
