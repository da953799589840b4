"""No job lost, on real processes (Celery workers on Redis, the registry on PostgreSQL):
a worker SIGKILLed mid-job has its job requeued by another worker's reaper and finished
there; a job submitted while the broker is down is dispatched by `python -m app reap` once
the broker is back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from app.db.models import Job
from tests.e2e.harness import base_env, free_port, process, worker_args
from tests.e2e.processes import (
    backing_services,
    insert_job,
    insert_tiny_model,
    job_row,
    publish,
    status_events,
    tiny_spec,
    wait_row,
)

pytestmark = pytest.mark.e2e
TENANT = "default"


def beating(job: Job) -> bool:
    """Running, and the heartbeat thread has written at least once since the claim."""
    return (
        job.status == "running"
        and job.heartbeat_at is not None
        and job.started_at is not None
        and job.heartbeat_at > job.started_at
    )


def test_sigkilled_worker_job_is_requeued_and_finished_elsewhere(tmp_path: Path) -> None:
    with backing_services(tmp_path, redis_db=13) as svc:
        env = base_env(
            tmp_path, DATABASE_URL=svc.db_url, REDIS_URL=svc.redis_url,
            HEARTBEAT_INTERVAL_S="0.5", HEARTBEAT_STALE_S="4", REAPER_INTERVAL_S="1",
            MAX_ATTEMPTS="3",
        )  # fmt: skip
        model_id = insert_tiny_model(svc.engine, tmp_path, tmp_path / "artifacts", TENANT)
        job_id = insert_job(svc.engine, tiny_spec(model_id, steps=400), TENANT)
        publish(svc.redis_url, job_id)
        logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]

        with process(worker_args(), env, logs[0]) as first:
            job = wait_row(svc.engine, job_id, beating, logs[:1], what="a heartbeat")
            assert job.attempts == 1 and job.stage != "package"
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        lost = job_row(svc.engine, job_id)
        assert lost.status == "running" and lost.attempts == 1  # nobody knows yet

        with process(worker_args(), env, logs[1]):
            done = wait_row(
                svc.engine, job_id, lambda j: j.status in ("succeeded", "failed", "canceled"),
                logs, timeout_s=600, what="a final status",
            )  # fmt: skip
        assert done.status == "succeeded", (done.error_code, done.error_message)
        assert done.attempts == 2 and done.worker_id != lost.worker_id
        events = status_events(svc.engine, job_id)
        assert [s for s, _ in events] == ["queued", "running", "queued", "running", "succeeded"]
        requeue_message = events[2][1] or ""
        assert f"worker {lost.worker_id} lost" in requeue_message


def create_api_key(env: dict[str, str], tenant: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "app", "create-api-key", "--tenant", tenant],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def wait_alive(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    """/healthz, not /readyz: the broker is down on purpose."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-4000:]
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"API not up:\n{log.read_text()[-4000:]}")


def test_job_submitted_while_broker_down_is_dispatched_later(tmp_path: Path) -> None:
    with backing_services(tmp_path, redis_db=12) as svc:
        dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        port = free_port()
        api_env = base_env(tmp_path, DATABASE_URL=svc.db_url, REDIS_URL=dead_broker,
                           PORT=str(port), REAPER_INTERVAL_S="0")  # fmt: skip
        live_env = base_env(tmp_path, DATABASE_URL=svc.db_url, REDIS_URL=svc.redis_url,
                            REAPER_INTERVAL_S="0", DISPATCH_GRACE_S="0")  # fmt: skip
        model_id = insert_tiny_model(svc.engine, tmp_path, tmp_path / "artifacts", "faults")
        token = create_api_key(live_env, "faults")
        logs = [tmp_path / "api.log", tmp_path / "worker.log"]

        with (
            process([sys.executable, "-m", "app", "serve"], api_env, logs[0]) as api,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                         headers={"Authorization": f"Bearer {token}"}) as client,
        ):  # fmt: skip
            wait_alive(client, api, logs[0])
            r = client.post("/v1/jobs", json=tiny_spec(model_id, steps=4))
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
        jid = uuid.UUID(job_id)
        queued = job_row(svc.engine, jid)
        assert queued.status == "queued" and queued.dispatched_at is None
        assert "broker unreachable" in logs[0].read_text()

        # The broker is back (the live Redis); a worker that does not reap on its own waits
        # on it, and the outbox pass publishes the job.
        with process(worker_args(), live_env, logs[1]):
            reap = subprocess.run(
                [sys.executable, "-m", "app", "reap"], env=live_env, capture_output=True,
                text=True, timeout=120,
            )  # fmt: skip
            assert reap.returncode == 0, reap.stderr
            assert "1 dispatched" in reap.stderr, reap.stderr
            done = wait_row(
                svc.engine, jid, lambda j: j.status in ("succeeded", "failed", "canceled"),
                logs, timeout_s=600, what="a final status",
            )  # fmt: skip
        assert done.status == "succeeded", (done.error_code, done.error_message)
        assert done.attempts == 1 and done.dispatched_at is not None

        # Published again by mistake (a second reaper, a restored message): a no-op.
        publish(svc.redis_url, jid)
        log2 = tmp_path / "worker2.log"
        with process(worker_args(), live_env, log2):
            deadline = time.monotonic() + 300
            while "succeeded in" not in log2.read_text():  # the task ran and returned
                assert time.monotonic() < deadline, log2.read_text()[-4000:]
                time.sleep(0.3)
        again = job_row(svc.engine, jid)
        assert again.attempts == 1 and again.finished_at == done.finished_at
