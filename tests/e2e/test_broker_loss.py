"""A Redis restarted empty does not strand queued jobs (real processes: a redis-server of the
test's own, a Celery worker, PostgreSQL): a job handed to the broker, whose message is lost
when Redis restarts without persistence, is re-dispatched by the worker's reaper on its next
pass (not after DISPATCH_STALE_S, 6 h) and runs to the end."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.harness import base_env, process, worker_args
from tests.e2e.processes import (
    dispatched_job,
    insert_tiny_model,
    migrated_database,
    tiny_spec,
    wait_row,
)
from tests.factories.redis_server import redis_server

pytestmark = pytest.mark.e2e
TENANT = "default"


def logged_at(text: str, needle: str) -> datetime:
    """When the worker's JSON log first says ``needle``."""
    for line in text.splitlines():
        if line.startswith("{") and needle in line:
            return datetime.fromisoformat(json.loads(line)["ts"])
    raise AssertionError(f"{needle!r} not logged:\n{text[-4000:]}")


def test_redis_restarted_empty_gets_its_queued_job_redispatched(tmp_path: Path) -> None:
    with migrated_database("scalpel_broker_loss") as (db_url, engine):
        with redis_server(tmp_path / "redis") as broker:
            model_id = insert_tiny_model(engine, tmp_path, tmp_path / "artifacts", TENANT)
            handed = dispatched_job(engine, broker.url, tiny_spec(model_id), TENANT)
            job_id, dispatched = handed.id, handed.dispatched_at
            assert broker.client().llen("compress") == 1

            run_id = broker.run_id()
            broker.restart_empty()  # no persistence: the message is gone
            restarted = time.monotonic()
            assert broker.run_id() != run_id and broker.client().llen("compress") == 0
            time.sleep(1.0)  # past BROKER_LOSS_GRACE_S
            env = base_env(
                tmp_path, DATABASE_URL=db_url, REDIS_URL=broker.url, REAPER_INTERVAL_S="1",
                BROKER_LOSS_GRACE_S="1", DISPATCH_STALE_S="21600", SWEEP_INTERVAL_S="0",
            )  # fmt: skip
            log = tmp_path / "worker.log"
            with process(worker_args(), env, log):
                started = time.monotonic()
                again = wait_row(
                    engine, job_id, lambda j: j.dispatched_at != dispatched, [log],
                    timeout_s=120, what="a re-dispatch",
                )  # fmt: skip
                redispatched = time.monotonic()
                done = wait_row(
                    engine, job_id, lambda j: j.status in ("succeeded", "failed", "canceled"),
                    [log], timeout_s=600, what="a final status",
                )  # fmt: skip
                finished = time.monotonic()
            text = log.read_text()
        assert done.status == "succeeded", (done.error_code, done.error_message)
        assert done.attempts == 1
        assert again.dispatched_at is not None and dispatched is not None
        assert "the broker lost 1 queued job(s)" in text, text[-4000:]
        # Within one reaper pass of the worker's reaper coming up (it ticks every second).
        up = logged_at(text, "scalpel-reaper started")
        lost = logged_at(text, "the broker lost 1 queued job(s)")
        pass_s = (lost - up).total_seconds()
        assert 0 < pass_s < 5, pass_s  # the first pass ticks 1 s after the start
        print(json.dumps({
            "redispatch_after_reaper_start_s": round(pass_s, 3),
            "redispatch_after_restart_s": round(redispatched - restarted, 2),
            "redispatch_after_worker_start_s": round(redispatched - started, 2),
            "succeeded_after_restart_s": round(finished - restarted, 2),
        }))  # fmt: skip
        assert redispatched - started < 60
