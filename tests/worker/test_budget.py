"""The worker enforces its memory budget: a real thread that allocates real memory is stopped
by the watchdog, and run_job fails a job over the budget (at start, and while it runs) with
memory_budget_exceeded instead of being OOM-killed. What an earlier job freed in the same
process is not charged to the next one, and the watchdog interrupts a job once."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db.models import Job, UploadedModel
from app.schemas.job_spec import JobSpec
from app.services import job_data_sizes, job_estimate, spec_limits
from tests.worker import test_runner
from tests.worker.test_runner import add_job, spec
from worker.budget import (
    MemoryBudgetExceeded,
    MemoryWatchdog,
    can_release_heap,
    rss_bytes,
)
from worker.runner import run_job

KiB, MiB = 2**10, 2**20
PROCESS = job_estimate.RUNTIME_BYTES
env = test_runner.env  # the tiny model, its data set and a session factory
glibc = pytest.mark.skipif(not can_release_heap(), reason="no malloc_trim: not glibc")


def test_rss_is_read_and_grows_with_a_real_allocation() -> None:
    before = rss_bytes()
    ballast = bytearray(64 * MiB)  # zero-filled: every page touched
    assert rss_bytes() - before > 48 * MiB
    del ballast


def test_a_thread_over_the_budget_gets_memory_budget_exceeded() -> None:
    """The job's thread allocates 16 MiB at a time (and keeps it) past a budget of 96 MiB
    above what the process held when the block started (no process term): the watchdog
    raises in that thread, which frees it all."""
    result: dict[str, Any] = {}
    budget = 96 * MiB

    def job() -> None:
        held: list[bytearray] = []
        try:
            with MemoryWatchdog(budget, 0.02, process_bytes=0) as dog:
                result["dog"] = dog
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and len(held) < 64:  # 1 GiB at most
                    held.append(bytearray(16 * MiB))
                    time.sleep(0.01)
            result["outcome"] = "finished"
        except MemoryBudgetExceeded as e:
            result["outcome"] = e
        result["held_mib"] = 16 * len(held)

    thread = threading.Thread(target=job)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    err = result["outcome"]
    assert isinstance(err, MemoryBudgetExceeded), result
    assert err.code == "memory_budget_exceeded"
    assert "memory budget" in err.message and str(budget) in err.message
    dog: MemoryWatchdog = result["dog"]
    assert dog.exceeded_at is not None and dog.exceeded_at > budget
    assert result["held_mib"] < 1024  # stopped long before the loop's own end
    assert not any(t.name == "memory watchdog" for t in threading.enumerate())


def test_under_the_budget_nothing_happens() -> None:
    with MemoryWatchdog(PROCESS + 1024 * MiB, 0.01) as dog:
        time.sleep(0.1)
    assert dog.exceeded_at is None and 0 < dog.peak <= PROCESS + 64 * MiB


def test_raised_once_so_cleanup_runs_and_a_swallowed_breach_fails_at_the_end() -> None:
    """Over the budget from the first sample (1 byte): the exception comes once; the handler
    and a cleanup that lasts many intervals are not interrupted again, and the block, which
    swallowed it, still ends with memory_budget_exceeded."""
    seen: list[str] = []
    with pytest.raises(MemoryBudgetExceeded), MemoryWatchdog(1, 0.005) as dog:
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.001)
            seen.append("never interrupted")
        except MemoryBudgetExceeded:
            seen.append("interrupted")
        finally:
            for _ in range(40):  # 0.2 s of cleanup: 40 intervals
                with contextlib.suppress(Exception):
                    time.sleep(0.005)
            seen.append("cleaned up")
    assert seen == ["interrupted", "cleaned up"]
    assert dog.interrupts == 1


def test_not_raised_inside_a_database_call(db_session: Session) -> None:
    """A job that writes rows, each in its own savepoint session as the worker's JobStore
    writes them, between short spells of its own work (which release the GIL, as torch ops
    do) is interrupted in its work: raised inside psycopg or a flush, the exception left the
    connection "another command is already in progress" in about one block in 20 (30
    blocks: failed in 4 runs of 4), and every later query of the job (its failure included)
    failed."""
    db_session.execute(text("CREATE TEMP TABLE budget_probe (id serial PRIMARY KEY)"))
    insert = text("INSERT INTO budget_probe DEFAULT VALUES RETURNING id")
    for _ in range(30):
        seen: list[str] = []
        with pytest.raises(MemoryBudgetExceeded), MemoryWatchdog(1, 0.005) as dog:
            try:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    with Session(bind=db_session.connection(),
                                 join_transaction_mode="create_savepoint") as s:  # fmt: skip
                        s.execute(insert).scalar_one()
                        s.commit()
                    time.sleep(0.001)  # the job's own work (a torch op, the GIL released)
                seen.append("never interrupted")
            except MemoryBudgetExceeded:
                seen.append("interrupted")
        assert seen == ["interrupted"] and dog.interrupts == 1
        assert db_session.execute(text("SELECT count(*) FROM budget_probe")).scalar_one() > 0


def retain_heap(total: int) -> bytearray:
    """A job that allocates `total` bytes in 64 KiB pieces (malloc's heap, not mmap) and frees
    them under one live piece: free() returns nothing (it trims only the top of the heap).
    Returns the live piece."""
    pieces = [bytearray(64 * KiB) for _ in range(total // (64 * KiB))]
    top = bytearray(64 * KiB)
    del pieces
    return top


@glibc
def test_a_second_job_after_a_big_first_one_is_not_failed() -> None:
    """The first job in the process takes and frees 384 MiB, which glibc keeps; the second
    job, 32 MiB, fits a budget of 128 MiB over the process (the old watchdog compared the
    whole RSS and failed it at its first sample)."""
    before = rss_bytes()
    with MemoryWatchdog(PROCESS + 2048 * MiB, 0.02) as first:
        top = retain_heap(384 * MiB)
    assert first.exceeded_at is None
    assert rss_bytes() - before > 256 * MiB  # retained by the process
    budget = max(before, PROCESS) + 128 * MiB
    with MemoryWatchdog(budget, 0.01) as second:
        held = bytearray(32 * MiB)
        time.sleep(0.2)
    assert second.exceeded_at is None, second.message()
    assert second.peak < budget and second.baseline < before + 128 * MiB  # trimmed at start
    del held, top


@glibc
def test_memory_a_second_job_reuses_from_the_first_ones_heap_is_counted() -> None:
    """The 200 MiB the second job takes would fit in what the first one freed; the trim at
    the start hands those pages back, so taking them again grows the RSS and is charged."""
    top = retain_heap(384 * MiB)
    pieces: list[bytearray] = []
    with pytest.raises(MemoryBudgetExceeded), MemoryWatchdog(128 * MiB, 0.01, process_bytes=0):
        pieces.extend(bytearray(64 * KiB) for _ in range(200 * 16))
        time.sleep(0.5)
    del pieces, top


def finished(db: Session, job_id: Any) -> Job:
    db.expire_all()
    row = db.get(Job, job_id)
    assert row is not None
    return row


def config(db: Session, e: dict[str, Any]) -> dict[str, Any]:
    model = db.get(UploadedModel, e["model_id"])
    assert model is not None and model.config is not None
    return model.config


def test_run_job_refuses_at_start_a_job_over_the_budget(
    env: dict[str, Any], db_session: Session
) -> None:
    settings = env["settings"].model_copy(update={"worker_memory_budget_bytes": 100 * MiB})
    job_id = add_job(db_session, spec(env["model_id"]))
    assert run_job(job_id, session_factory=env["factory"], settings=settings) == "failed"
    row = finished(db_session, job_id)
    assert row.error_code == "memory_budget_exceeded"
    assert "estimated" in (row.error_message or "")
    assert row.stage in (None, "queued")  # nothing loaded


def test_run_job_fails_a_job_whose_process_goes_over_the_budget(
    env: dict[str, Any], db_session: Session
) -> None:
    """The budget is the job's own estimate (so the start check passes); once the job runs,
    the process takes more than that (a real allocation, by another thread of the worker
    process): the watchdog ends the running job."""
    body = spec(env["model_id"])
    settings, cfg = env["settings"], config(db_session, env)
    sizes = job_data_sizes.builtin_sizes("sst2", settings.data_dir)
    est = job_estimate.estimate(JobSpec.model_validate(body), cfg, sizes,
                                settings.estimate_train_flops_per_s)  # fmt: skip
    settings = settings.model_copy(update={"worker_memory_budget_bytes": est.peak_bytes,
                                           "memory_watchdog_interval_s": 0.05})  # fmt: skip
    spec_limits.check_estimate(JobSpec.model_validate(body), cfg, sizes,
                               spec_limits.Limits.of(settings))  # fmt: skip
    job_id = add_job(db_session, body)
    done = threading.Event()

    def ballast() -> None:
        deadline = time.monotonic() + 60
        while not any(t.name == f"memory watchdog {job_id}" for t in threading.enumerate()):
            if done.wait(0.005) or time.monotonic() > deadline:
                return
        held = bytearray(est.peak_bytes + 64 * MiB)  # over the budget whatever the baseline
        done.wait(60)
        del held

    thread = threading.Thread(target=ballast)
    thread.start()
    try:
        status = run_job(job_id, session_factory=env["factory"], settings=settings)
    finally:
        done.set()
        thread.join(60)
    row = finished(db_session, job_id)
    assert (status, row.error_code) == ("failed", "memory_budget_exceeded"), row.error_message
    assert "the job's memory reached" in (row.error_message or "")
