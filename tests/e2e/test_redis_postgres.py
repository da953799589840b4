"""End to end on the production parts: the API over HTTP, a real Celery worker process on
Redis, the registry on PostgreSQL. Tiny random BERT models, uploaded through the API."""

from __future__ import annotations

import hashlib
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from alembic import command
from tests.conftest import alembic_config, create_database, drop_database
from tests.e2e.harness import (
    authorize,
    base_env,
    create_api_key,
    free_port,
    process,
    wait_job,
    wait_ready,
    worker_args,
)
from tests.factories.tiny_bert import archive, write_tiny_bert

pytestmark = pytest.mark.e2e
REDIS_DB_URL = "redis://127.0.0.1:6379/14"


def tiny_job(model_id: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": model_id,
        "dataset": {"name": "tweets", "max_train_examples": 64, "max_eval_examples": 32,
                    "max_length": 32},
        "pruning": {"method": "magnitude", "sparsity": 0.5},
        "quantization": {"method": "dynamic_int8"},
        "training": {"max_steps": 4, "recovery_max_steps": 4, "batch_size": 8},
    }  # fmt: skip
    spec.update(overrides)
    return spec


@contextmanager
def running_stack(tmp_path: Path) -> Iterator[tuple[httpx.Client, list[Path]]]:
    """A database migrated to head, the API and a Celery worker process, an authorised client."""
    name = f"scalpel_e2e_{abs(hash(tmp_path)) % 10**8}"
    db_url = create_database(name)
    command.upgrade(alembic_config(db_url), "head")
    redis.Redis.from_url(REDIS_DB_URL).flushdb()
    port = free_port()
    env = base_env(tmp_path, DATABASE_URL=db_url, REDIS_URL=REDIS_DB_URL, PORT=str(port))
    logs = [tmp_path / "api.log", tmp_path / "worker.log"]
    try:
        with (
            process([sys.executable, "-m", "app", "serve"], env, logs[0]) as api,
            process(worker_args(), env, logs[1]),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            wait_ready(client, api, logs[0])
            yield authorize(client, create_api_key(env)), logs
    finally:
        drop_database(name)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[httpx.Client, list[Path]]]:
    with running_stack(tmp_path) as running:
        yield running


def upload_tiny_model(client: httpx.Client, tmp_path: Path) -> str:
    folder = write_tiny_bert(tmp_path / "tiny")
    path = archive(folder, tmp_path / "tiny.zip", "zip")
    with path.open("rb") as f:
        r = client.post("/v1/models", files={"file": ("tiny.zip", f, "application/zip")})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def download(client: httpx.Client, artifact: dict[str, Any], dest: Path) -> Path:
    r = client.get(f"/v1/artifacts/{artifact['id']}")
    assert r.status_code == 200
    digest = hashlib.sha256(r.content).hexdigest()
    assert digest == artifact["sha256"] == r.headers["x-checksum-sha256"]
    dest.write_bytes(r.content)
    return dest


def run_to_success(
    client: httpx.Client, spec: dict[str, Any], logs: list[Path], tmp_path: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """Submit `spec`, wait for `succeeded`; the job, its artifacts by kind and its report."""
    import json

    r = client.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"], logs)
    assert job["status"] == "succeeded", (job.get("error"), job)
    arts = {a["kind"]: a for a in client.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]}
    report = json.loads(download(client, arts["report"], tmp_path / "report.json").read_text())
    return job, arts, report


def encoder_sparsity(model_dir: Path) -> float:
    from transformers import AutoModelForSequenceClassification

    from worker.compression import sparsity_of
    from worker.pipelines.architecture import prunable_targets

    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    return sparsity_of(prunable_targets(model)).overall


def test_job_runs_on_redis_worker_and_artifact_loads(
    stack: tuple[httpx.Client, list[Path]], tmp_path: Path
) -> None:
    client, logs = stack
    model_id = upload_tiny_model(client, tmp_path)
    r = client.post("/v1/jobs", json=tiny_job(model_id))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["location"] == f"/v1/jobs/{job_id}"

    job = wait_job(client, job_id, logs)
    assert job["status"] == "succeeded", job
    assert job["progress"] == pytest.approx(1.0)
    assert job["started_at"] and job["finished_at"]
    events = client.get(f"/v1/jobs/{job_id}/events").json()["items"]
    assert {e["stage"] for e in events if e.get("stage")} >= {"prune", "recover", "package"}

    arts = {a["kind"]: a for a in client.get(f"/v1/jobs/{job_id}/artifacts").json()["items"]}
    assert {"model", "model_int8", "report"} <= set(arts)
    tgz = download(client, arts["model"], tmp_path / "model.tar.gz")
    out = tmp_path / "model"
    with tarfile.open(tgz) as t:
        t.extractall(out, filter="data")
    model_dir = next(p.parent for p in out.rglob("config.json"))
    assert encoder_sparsity(model_dir) == pytest.approx(0.5, abs=1e-3)

    report = download(client, arts["report"], tmp_path / "report.json").read_text()
    assert '"compressed"' in report and '"dense"' in report


def test_obert_gradual_job_end_to_end(
    stack: tuple[httpx.Client, list[Path]], tmp_path: Path
) -> None:
    client, logs = stack
    model_id = upload_tiny_model(client, tmp_path)
    spec = tiny_job(
        model_id,
        pruning={
            "method": "obert", "sparsity": 0.6,
            "schedule": {"kind": "gradual", "steps": 6, "pruning_steps": 2, "init_sparsity": 0.3},
            "obert": {"num_grads": 8, "block_size": 16, "grad_batch_size": 4},
        },
        quantization={"method": "none"},
        training={"max_steps": 4, "recovery_max_steps": 8, "batch_size": 8},
    )  # fmt: skip
    r = client.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"], logs)
    assert job["status"] == "succeeded", job
    arts = {a["kind"]: a for a in client.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]}
    tgz = download(client, arts["model"], tmp_path / "m.tar.gz")
    with tarfile.open(tgz) as t:
        t.extractall(tmp_path / "m", filter="data")
    model_dir = next(p.parent for p in (tmp_path / "m").rglob("config.json"))
    assert encoder_sparsity(model_dir) == pytest.approx(0.6, abs=1e-3)


def test_cancel_stops_a_running_job(stack: tuple[httpx.Client, list[Path]], tmp_path: Path) -> None:
    client, logs = stack
    model_id = upload_tiny_model(client, tmp_path)
    spec = tiny_job(model_id, training={"max_steps": 100000, "batch_size": 8})
    job_id = client.post("/v1/jobs", json=spec).json()["id"]
    deadline = time.monotonic() + 120
    while client.get(f"/v1/jobs/{job_id}").json()["stage"] != "finetune_dense":
        assert time.monotonic() < deadline, "the job never started fine-tuning"
        time.sleep(0.3)
    asked = time.monotonic()
    r = client.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 202, r.text
    job = wait_job(client, job_id, logs, timeout_s=60)
    assert job["status"] == "canceled"
    assert time.monotonic() - asked < 15
