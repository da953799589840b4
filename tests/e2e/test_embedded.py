"""End to end on the embedded default: SQLite and kombu's filesystem transport, started the
way `make serve` starts them (scripts/serve.py: migrate, API and a real worker process)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import (
    authorize,
    base_env,
    create_api_key,
    free_port,
    process,
    wait_job,
    wait_ready,
)
from tests.e2e.test_redis_postgres import download, tiny_job, upload_tiny_model

pytestmark = pytest.mark.e2e


def test_embedded_default_runs_a_job(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'scalpel.db'}", PORT=str(port))
    log = tmp_path / "serve.log"
    with (
        process([sys.executable, "scripts/serve.py"], env, log) as serve,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        wait_ready(client, serve, log)  # serve.py has migrated the database
        assert client.get("/v1/jobs").status_code == 401
        authorize(client, create_api_key(env))
        model_id = upload_tiny_model(client, tmp_path)
        r = client.post("/v1/jobs", json=tiny_job(model_id))
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"], [log])
        assert job["status"] == "succeeded", job
        arts = {a["kind"]: a for a in client.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]}
        report = json.loads(download(client, arts["report"], tmp_path / "report.json").read_text())
        assert report["compressed"]["sparsity"]["overall"] == pytest.approx(0.5, abs=1e-3)
        assert 0.0 <= report["dense"]["accuracy"] <= 1.0
    assert (tmp_path / "scalpel.db").is_file()
