"""The CLI end to end with a real Celery worker: upload a tiny model, submit --wait (live
progress to the end), download every artifact with digests verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli.main import app
from tests.client.server import running_server
from tests.e2e.harness import process, worker_args
from tests.e2e.processes import tiny_spec
from tests.factories.tiny_bert import archive, write_tiny_bert

pytestmark = pytest.mark.e2e


def tiny_job(model_id: str) -> dict[str, Any]:
    return {**tiny_spec(model_id), "quantization": {"method": "dynamic_int8"}}


def test_submit_wait_and_download_a_real_job(tmp_path: Path) -> None:
    with running_server(tmp_path / "api") as server, process(
        worker_args(), server.env, tmp_path / "worker.log"
    ):  # fmt: skip
        runner = CliRunner()
        env = {"SCALPEL_URL": server.url, "SCALPEL_API_KEY": server.api_key}

        def cli(*args: str) -> tuple[int, str, str]:
            r = runner.invoke(app, list(args), env=env, catch_exceptions=False)
            return r.exit_code, r.stdout, r.stderr

        model_zip = archive(write_tiny_bert(tmp_path / "tiny"), tmp_path / "tiny.zip", "zip")
        code, out, err = cli("--json", "models", "upload", str(model_zip))
        assert code == 0, err
        spec = tmp_path / "job.json"
        spec.write_text(json.dumps(tiny_job(json.loads(out)["id"])))
        code, out, err = cli("submit", "--spec", str(spec), "--wait")
        log = (tmp_path / "worker.log").read_text()[-3000:]
        assert code == 0, f"{out}\n{err}\n{log}"
        assert "succeeded" in out
        job_id = out.split()[1].rstrip(":")
        code, out, err = cli("--json", "download", job_id, "--out", str(tmp_path / "dl"))
        assert code == 0, err
        files = {d["kind"]: Path(d["path"]) for d in json.loads(out)}
        report = json.loads(files["report"].read_text())
        assert report["compressed"]["sparsity"]["overall"] == pytest.approx(0.5, abs=1e-3)
