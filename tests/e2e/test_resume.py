"""Resume after a lost worker, on real processes: a gradual-pruning job whose worker is
SIGKILLed after a pruning-step checkpoint is requeued by `python -m app reap`, and a second
worker (same work dir) finishes it from that checkpoint, not from the start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.db.models import Artifact, JobEvent
from app.storage import LocalStore
from tests.e2e.harness import base_env, process, worker_args
from tests.e2e.processes import (
    backing_services,
    insert_job,
    insert_tiny_model,
    job_row,
    publish,
    status_events,
    wait_row,
)

pytestmark = pytest.mark.e2e
TENANT = "default"
FINAL = ("succeeded", "failed", "canceled")
RECOVER_STEPS = 80  # gradual schedule: pruning at 20, 40, 60 and 80 (~0.2 s a step)


def gradual_spec(model_id: str) -> dict[str, Any]:
    return {
        "model": model_id,
        "dataset": {"name": "tweets", "max_train_examples": 64, "max_eval_examples": 32,
                    "max_length": 32},
        "pruning": {"method": "magnitude", "sparsity": 0.6,
                    "schedule": {"kind": "gradual", "steps": RECOVER_STEPS, "pruning_steps": 4}},
        "quantization": {"method": "none"},
        "training": {"max_steps": 4, "recovery_max_steps": 4, "batch_size": 8},
    }  # fmt: skip


def wait_file(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, f"no {path} in {timeout_s} s\n{log.read_text()[-4000:]}"
        time.sleep(0.05)


def reap_until_requeued(env: dict[str, str], stale_s: float) -> str:
    """`python -m app reap` (as an operator or a cron would) until it requeues the job."""
    time.sleep(stale_s)
    out = ""
    for _ in range(10):
        reap = subprocess.run(
            [sys.executable, "-m", "app", "reap"], env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert reap.returncode == 0, reap.stderr
        out = reap.stderr
        if "1 requeued" in out:
            return out
        time.sleep(1)
    raise AssertionError(f"the reaper never requeued the job:\n{out}")


def stages_after_second_claim(engine: Engine, job_id: uuid.UUID) -> list[str | None]:
    with Session(engine) as s:
        events = s.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).all()
    claims = [i for i, e in enumerate(events) if e.kind == "status" and e.status == "running"]
    assert len(claims) == 2, [(e.kind, e.status) for e in events]
    return [e.stage for e in events[claims[1] :] if e.kind == "stage"]


def report_of(engine: Engine, job_id: uuid.UUID, store: LocalStore) -> dict[str, Any]:
    with Session(engine) as s:
        key = s.scalars(
            select(Artifact.storage_key).where(Artifact.job_id == job_id,
                                               Artifact.kind == "report")
        ).one()  # fmt: skip
    data: dict[str, Any] = json.loads(store.local_path(key).read_text())
    return data


def test_lost_worker_job_resumes_from_its_pruning_step_checkpoint(tmp_path: Path) -> None:
    with backing_services(tmp_path, redis_db=10) as svc:
        stale_s = 2.0
        env = base_env(
            tmp_path, DATABASE_URL=svc.db_url, REDIS_URL=svc.redis_url,
            HEARTBEAT_INTERVAL_S="0.5", HEARTBEAT_STALE_S=str(stale_s), REAPER_INTERVAL_S="0",
            MAX_ATTEMPTS="3",
        )  # fmt: skip
        model_id = insert_tiny_model(svc.engine, tmp_path, tmp_path / "artifacts", TENANT)
        job_id = insert_job(svc.engine, gradual_spec(model_id), TENANT)
        publish(svc.redis_url, job_id)
        logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
        checkpoints = tmp_path / "work" / str(job_id) / "checkpoints"

        with process(worker_args(), env, logs[0]) as first:
            wait_file(checkpoints / "prune_step.json", first, logs[0], timeout_s=300)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        lost = job_row(svc.engine, job_id)
        assert lost.status == "running" and lost.attempts == 1, lost.status
        assert lost.stage == "recover"
        assert (checkpoints / "stage.json").exists()  # the dense stage's, and the step's
        assert (checkpoints / "prune_step.json").exists()

        with process(worker_args(), env, logs[1]):
            reaped = reap_until_requeued(env, stale_s)
            assert "1 dispatched" in reaped, reaped
            done = wait_row(
                svc.engine, job_id, lambda j: j.status in FINAL, logs, timeout_s=600,
                what="a final status",
            )  # fmt: skip
        assert done.status == "succeeded", (done.error_code, done.error_message)
        assert done.attempts == 2 and done.worker_id != lost.worker_id
        statuses = [s for s, _ in status_events(svc.engine, job_id)]
        assert statuses == ["queued", "running", "queued", "running", "succeeded"]

        # The second attempt skipped the dense fine-tune and restarted `recover` mid-way.
        stages = stages_after_second_claim(svc.engine, job_id)
        assert "finetune_dense" not in stages and "evaluate_dense" not in stages, stages
        assert "recover" in stages and stages[-1] == "package", stages
        report = report_of(svc.engine, job_id, LocalStore(tmp_path / "artifacts"))
        resumed = report["resumed_from"]
        assert resumed is not None and resumed["stage"] == "recover", resumed
        assert resumed["prune_step"] >= 1 and resumed["train_step"] >= RECOVER_STEPS // 4
        assert resumed["completed"] == ["dense"]
        assert [p["step"] for p in report["pruning"]["applied"]][-1] == RECOVER_STEPS
        assert report["training_steps"]["recover"] == RECOVER_STEPS
        assert not checkpoints.exists()  # removed once the job succeeded
