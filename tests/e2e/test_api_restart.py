"""The API process restarted while a job runs, on real processes: the worker does not depend on
it, and the new API process (same database) shows the job and its end."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import base_env, free_port, process, wait_job, wait_ready, worker_args
from tests.e2e.processes import backing_services, insert_tiny_model, job_row, wait_row
from tests.e2e.test_faults import create_api_key, tiny_spec

pytestmark = pytest.mark.e2e
TENANT = "restart"
STEPS = 120  # the dense fine-tune alone takes ~20 s: long enough to restart the API


def api_env(base: dict[str, str], port: int) -> dict[str, str]:
    return {**base, "PORT": str(port)}


def test_job_in_flight_survives_an_api_restart(tmp_path: Path) -> None:
    with backing_services(tmp_path, redis_db=9) as svc:
        env = base_env(tmp_path, DATABASE_URL=svc.db_url, REDIS_URL=svc.redis_url,
                       REAPER_INTERVAL_S="0")  # fmt: skip
        model_id = insert_tiny_model(svc.engine, tmp_path, tmp_path / "artifacts", TENANT)
        token = create_api_key(env, TENANT)
        headers = {"Authorization": f"Bearer {token}"}
        logs = [tmp_path / "worker.log", tmp_path / "api1.log", tmp_path / "api2.log"]
        port1, port2 = free_port(), free_port()
        serve = [sys.executable, "-m", "app", "serve"]

        with process(worker_args(), env, logs[0]):
            with (
                process(serve, api_env(env, port1), logs[1]) as api1,
                httpx.Client(base_url=f"http://127.0.0.1:{port1}", timeout=60,
                             headers=headers) as client,
            ):  # fmt: skip
                wait_ready(client, api1, logs[1])
                r = client.post("/v1/jobs", json=tiny_spec(model_id, steps=STEPS))
                assert r.status_code == 202, r.text
                job_id = r.json()["id"]
                jid = uuid.UUID(job_id)
                wait_row(svc.engine, jid, lambda j: j.status == "running", logs,
                         what="running")  # fmt: skip
                os.killpg(api1.pid, signal.SIGTERM)
                assert api1.wait(timeout=60) is not None
            in_flight = job_row(svc.engine, jid)
            assert in_flight.status == "running", in_flight.status  # the worker goes on

            with (
                process(serve, api_env(env, port2), logs[2]) as api2,
                httpx.Client(base_url=f"http://127.0.0.1:{port2}", timeout=60,
                             headers=headers) as client,
            ):  # fmt: skip
                wait_ready(client, api2, logs[2])
                seen = client.get(f"/v1/jobs/{job_id}")
                assert seen.status_code == 200, seen.text
                assert seen.json()["status"] in ("running", "succeeded")
                done = wait_job(client, job_id, logs, timeout_s=600)
                assert done["status"] == "succeeded", done
                arts = client.get(f"/v1/jobs/{job_id}/artifacts")
                assert arts.status_code == 200
                assert "report" in {a["kind"] for a in arts.json()["items"]}
        final = job_row(svc.engine, jid)
        assert final.attempts == 1  # never interrupted, never requeued
