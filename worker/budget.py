"""The worker's memory budget (Settings.worker_memory_budget_bytes), enforced in the worker:
the job's estimate (app.services.job_estimate) is checked again when the job starts, and a
watchdog thread samples the process's resident memory while the job runs.

What is compared with the budget: the job's memory as the estimate counts it, the worker
process itself (job_estimate.RUNTIME_BYTES) plus what the job adds. When the watched block
starts, the heap that earlier jobs freed but glibc kept is handed back to the OS
(malloc_trim(0)) and the RSS is taken as the baseline; a sample charges the job

    min(RSS, RUNTIME_BYTES + (RSS - baseline))

so a process that holds more than RUNTIME_BYTES at the start (what a previous job left that
the trim could not return, a leak) does not fail the next job for it, and one that holds
less (a fresh worker, imports still to come) is charged its whole RSS, never the process
twice. Because the trim returns freed pages, memory the job reuses from an earlier job's
heap is faulted in again and counted (without glibc the trim is skipped and such reuse is
not seen).

Over the budget it raises MemoryBudgetExceeded once in the job's own thread (at its next
Python bytecode, and not while that thread is inside a database, broker or HTTP client
call, whose connection it would leave broken), so the job fails with the stable code
memory_budget_exceeded, its `finally` blocks run and the process lives on, instead of the
kernel's OOM killer taking the whole worker. After that it only records: cleanup that runs
while the job unwinds is not interrupted again, and a job that swallowed the exception fails
with it when the block ends.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from app.errors import Unprocessable
from app.schemas.job_spec import BUILTIN_DATASETS, JobSpec
from app.services import job_data_sizes, job_estimate, spec_limits
from app.services.periodic import PeriodicLoop
from app.settings import Settings
from worker.job_store import JobStore
from worker.pipelines.errors import PipelineError

log = logging.getLogger(__name__)
CODE = "memory_budget_exceeded"


class MemoryBudgetExceeded(PipelineError):
    code = CODE


def rss_bytes() -> int:
    """The process's resident set now (Linux: /proc/self/statm); elsewhere its peak so far."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def release_free_heap() -> bool:
    """Hands the memory the heap holds free back to the OS: glibc's malloc_trim(0), which
    releases free pages anywhere in every arena (free() only trims the top of the heap, so
    one live block above a freed gigabyte keeps it resident). False where there is none."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def can_release_heap() -> bool:
    return _malloc_trim() is not None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the process's own libc (absent on musl)
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def check_at_start(spec: JobSpec, settings: Settings, jobs: JobStore) -> None:
    """The submission's estimate again, with this worker's settings (the budget may have
    changed since, or the job was queued by an older API): PipelineError memory_budget_exceeded
    or time_limit_exceeded before any model is loaded."""
    model_id = _uuid(spec.model)
    record = jobs.get_uploaded_model(model_id) if model_id is not None else None
    config = spec_limits.model_config(spec.model, record.config if record else None)
    name = spec.dataset.name
    if config is None:
        return
    if name in BUILTIN_DATASETS:
        sizes = job_data_sizes.builtin_sizes(name, settings.data_dir)
    else:
        dataset_id = _uuid(name)
        rec = jobs.get_uploaded_dataset(dataset_id) if dataset_id is not None else None
        if rec is None:
            return  # the pipeline reports the missing data set
        labels = job_data_sizes.task_labels(spec.task, rec.labels)
        sizes = job_data_sizes.uploaded_sizes(rec.num_rows, labels, spec.task)
    try:
        spec_limits.check_estimate(
            spec, config, job_data_sizes.limited(sizes, spec), spec_limits.Limits.of(settings)
        )
    except Unprocessable as e:
        raise PipelineError(e.detail or str(e), code=e.code) from None


class MemoryWatchdog(PeriodicLoop):
    """`with MemoryWatchdog(budget, interval_s):` releases the free heap, takes the baseline
    RSS, then samples every interval_s on a daemon thread (interval_s <= 0: no thread). Once
    the job's memory (charged(), see the module) is over the budget, MemoryBudgetExceeded is
    raised once in the thread that entered the block, and again at the end of the block if
    it had not surfaced there. `peak` is the largest charge sampled, `peak_rss` the largest
    RSS; `exceeded_at` the charge that tripped it."""

    def __init__(
        self,
        budget_bytes: int,
        interval_s: float,
        *,
        name: str = "memory watchdog",
        process_bytes: int = job_estimate.RUNTIME_BYTES,
    ):
        super().__init__(name, interval_s, self.sample)
        self.budget_bytes = budget_bytes
        self.process_bytes = process_bytes
        self.baseline = 0
        self.peak = 0
        self.peak_rss = 0
        self.exceeded_at: int | None = None
        self.exceeded_rss = 0
        self.interrupts = 0
        self._lock = threading.Lock()
        self._armed = False
        self._target: int | None = None

    @classmethod
    def of(cls, settings: Settings, *, name: str = "memory watchdog") -> MemoryWatchdog:
        budget, interval = settings.worker_memory_budget_bytes, settings.memory_watchdog_interval_s
        return cls(budget, interval, name=name)

    def charged(self, rss: int) -> int:
        return min(rss, self.process_bytes + max(0, rss - self.baseline))

    def message(self) -> str:
        used = self.exceeded_at if self.exceeded_at is not None else self.peak
        rss = self.exceeded_rss or self.peak_rss
        return (
            f"the job's memory reached {_gib(used)} ({used} bytes: the worker's resident "
            f"memory was {_gib(rss)}, {_gib(self.baseline)} when the job started, and the job "
            f"is charged what it added plus {_gib(self.process_bytes)} for the process), over "
            f"its memory budget of {_gib(self.budget_bytes)} ({self.budget_bytes} bytes, "
            "WORKER_MEMORY_BUDGET_BYTES); lower training.batch_size, "
            "training.eval_batch_size or dataset.max_length, or raise the budget"
        )

    def start(self) -> None:
        release_free_heap()
        self.baseline = rss_bytes()
        self._target = threading.get_ident()
        self._armed = True
        super().start()

    def stop(self, timeout_s: float = 10.0) -> None:
        super().stop(max(timeout_s, self.interval_s))
        with self._lock:
            self._armed = False
            if self._target == threading.get_ident():
                _set_async_exc(self._target, None)  # drop one not delivered yet

    def __exit__(self, *exc_info: object) -> None:
        """Stops, and fails a block that went over the budget and did not end with it."""
        self.stop()
        exc = exc_info[1]
        if self.exceeded_at is not None and not isinstance(exc, MemoryBudgetExceeded):
            raise MemoryBudgetExceeded(self.message()) from (
                exc if isinstance(exc, BaseException) else None
            )

    def sample(self) -> None:
        rss = rss_bytes()
        used = self.charged(rss)
        self.peak, self.peak_rss = max(self.peak, used), max(self.peak_rss, rss)
        if self.exceeded_at is None and used > self.budget_bytes:
            self.exceeded_at, self.exceeded_rss = used, rss
            log.error("%s: %s", self.name, self.message())
        if self.exceeded_at is not None and self.interrupts == 0:
            self._interrupt()

    def _interrupt(self) -> None:
        """Raises in the job's thread once, when it is not inside a call of a client library
        (_DEFER); tried again for up to an interval, then at the next sample."""
        deadline = time.monotonic() + max(self.interval_s, 0.05)
        while True:
            with self._lock:
                if not self._armed or self._target is None or self.interrupts:
                    return
                if not _inside(self._target, _DEFER):
                    self.interrupts += 1
                    _set_async_exc(self._target, _exception_type(self.message()))
                    return
            if time.monotonic() > deadline:
                return
            time.sleep(0.002)


# Libraries whose connection an exception in the middle of a call leaves broken (a PostgreSQL
# connection "another command is already in progress", half a Redis reply read): the
# interrupt waits until the job's thread has returned from them. This narrows the window; it
# cannot close it (the thread may enter one between the check and its next bytecode).
_DEFER = frozenset(
    {"sqlalchemy", "psycopg", "psycopg2", "redis", "kombu", "celery", "amqp", "httpx",
     "httpcore", "urllib3", "botocore", "s3transfer", "boto3"}
)  # fmt: skip


def _inside(thread_id: int, packages: frozenset[str]) -> bool:
    """Whether a frame of that thread's stack runs code of one of `packages`."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).partition(".")[0] in packages:
            return True
        frame = frame.f_back
    return False


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _exception_type(message: str) -> type[MemoryBudgetExceeded]:
    """An exception class raised without arguments (as an asynchronous exception is)."""

    class Exceeded(MemoryBudgetExceeded):
        def __init__(self, *args: Any) -> None:
            super().__init__(message)

    Exceeded.__name__ = Exceeded.__qualname__ = "MemoryBudgetExceeded"
    return Exceeded


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )
