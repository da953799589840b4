"""The `scalpel` CLI against a real API server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.cli.context import Exit
from tests.app.cli.conftest import Cli
from tests.client.server import Server, sha256, tiny_dataset_csv, tiny_model_zip
from tests.e2e.harness import ROOT, free_port


def submit(cli: Cli, *args: str) -> dict[str, Any]:
    r = cli("--json", "submit", "--model", "minilm-l6", "--dataset", "tweets", *args)
    assert r.exit_code == 0, r.output
    job: dict[str, Any] = json.loads(r.stdout)
    return job


def test_submit_from_flags_then_show_and_list(cli: Cli) -> None:
    job = submit(cli, "--sparsity", "0.8", "--method", "magnitude", "--quantization",
                 "dynamic_int8")  # fmt: skip
    assert job["status"] == "queued"
    assert job["spec"]["pruning"]["sparsity"] == 0.8
    assert job["spec"]["quantization"]["method"] == "dynamic_int8"
    r = cli("show", job["id"])
    assert r.exit_code == 0 and f"job {job['id']}: queued" in r.stdout
    r = cli("--json", "jobs", "--status", "queued")
    assert job["id"] in {j["id"] for j in json.loads(r.stdout)}
    r = cli("jobs", "--limit", "500")  # no name: the job by the start of its id
    assert r.exit_code == 0 and job["id"][:8] in r.stdout and "STATUS" in r.stdout
    assert job["id"] not in r.stdout
    assert job["id"] in cli("jobs", "--limit", "500", "--ids").stdout


def test_flags_override_the_spec_file(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("model: minilm-l6\ndataset:\n  name: tweets\n  max_length: 32\n"
                    "pruning:\n  method: magnitude\n  sparsity: 0.5\n")  # fmt: skip
    job = json.loads(cli("--json", "submit", "--spec", str(spec), "--sparsity", "0.9",
                         "--set", "training.max_steps=4").stdout)  # fmt: skip
    assert job["spec"]["pruning"]["sparsity"] == 0.9
    assert job["spec"]["dataset"]["max_length"] == 32
    assert job["spec"]["training"]["max_steps"] == 4
    as_json = tmp_path / "job.json"
    as_json.write_text(json.dumps({"model": "minilm-l6", "dataset": {"name": "tweets"}}))
    r = cli("submit", "--spec", str(as_json), "--idempotency-key", "cli-k1")
    again = cli("submit", "--spec", str(as_json), "--idempotency-key", "cli-k1")
    assert r.exit_code == 0 and r.stdout == again.stdout and r.stdout.startswith("submitted job")


def test_api_errors_show_code_detail_and_field(cli: Cli) -> None:
    r = cli("submit", "--model", "minilm-l6", "--dataset", "tweets", "--sparsity", "2")
    assert r.exit_code == Exit.ERROR
    assert "validation_error (422)" in r.stderr and "field: pruning.sparsity" in r.stderr
    r = cli("--json", "submit", "--model", "nope", "--dataset", "tweets")
    problem = json.loads(r.stderr)["error"]
    assert r.exit_code == Exit.ERROR
    assert (problem["code"], problem["field"]) == ("model_not_found", "model")
    r = cli("--api-key", "sk_abc_wrong", "jobs")
    assert r.exit_code == Exit.ERROR and "unauthenticated (401)" in r.stderr


def test_usage_errors(cli: Cli, tmp_path: Path) -> None:
    r = cli("submit", "--dataset", "tweets")
    assert r.exit_code == Exit.USAGE and "no model" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    r = cli("submit", "--spec", str(bad))
    assert r.exit_code == Exit.USAGE and "mapping" in r.stderr


def test_unreachable_api(cli: Cli) -> None:
    """One line naming the base URL tried and the request, no traceback (CliRunner would
    raise an escaped exception), exit 5."""
    base = f"http://127.0.0.1:{free_port()}"
    r = cli("--url", base + "/", "show", "x")
    assert r.exit_code == Exit.UNREACHABLE and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(
        f"error: cannot reach the API at {base}: "
    )
    assert f"(GET {base}/v1/jobs/x)" in r.stderr and "refused" in r.stderr.lower()
    r = cli("--json", "jobs", SCALPEL_URL=base)
    error = json.loads(r.stderr)["error"]
    assert r.exit_code == Exit.UNREACHABLE and error["url"] == base
    assert error["detail"].startswith(f"cannot reach the API at {base}")


def test_a_url_that_is_not_http(cli: Cli) -> None:
    r = cli("--url", "localhost:8000", "jobs")
    assert r.exit_code == Exit.ERROR
    assert r.stderr == "error: the API URL must look like http://host:port, not 'localhost:8000'\n"


def test_cancel_and_watch_exit_codes(cli: Cli, server: Server) -> None:
    job = submit(cli)
    r = cli("cancel", job["id"])
    assert r.exit_code == 0 and r.stdout.strip() == f"job {job['id']}: canceled"
    assert cli("watch", job["id"]).exit_code == Exit.JOB_CANCELED

    failed = submit(cli)
    server.finish_job(failed["id"], "failed", stage="prune", error_code="oom",
                      error_message="out of memory")  # fmt: skip
    r = cli("watch", failed["id"], "--interval", "0.1")
    assert r.exit_code == Exit.JOB_FAILED and "error oom: out of memory" in r.stdout

    ok = submit(cli)
    server.finish_job(ok["id"], "succeeded", stage="export", progress=1.0,
                      metrics={"compressed": {"accuracy": 0.91, "sparsity": 0.5}})  # fmt: skip
    r = cli("watch", ok["id"])
    assert r.exit_code == 0 and "succeeded" in r.stdout
    assert "compressed.accuracy=0.91" in r.stdout
    r = cli("--json", "watch", ok["id"])
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 0 and lines[-1]["status"] == "succeeded"


def test_show_leads_with_the_primary_metric(cli: Cli, server: Server) -> None:
    qa = submit(cli)
    server.finish_job(qa["id"], "succeeded", stage="package", progress=1.0, metrics={
        "task": "question_answering", "primary_metric": {"name": "f1", "value": 0.8125},
        "dense_primary_metric": {"name": "f1", "value": 0.85},
        "onnx_int8_primary_metric": {"name": "f1", "value": 0.79}, "exact_match": 0.72,
        "f1": 0.8125, "dense_f1": 0.85, "sparsity": 0.5,
    })  # fmt: skip
    r = cli("show", qa["id"])
    assert r.exit_code == 0
    assert ("metrics: f1=0.8125  dense_f1=0.85  task=question_answering  onnx_int8_f1=0.79  "
            "exact_match=0.72  sparsity=0.5") in r.stdout  # fmt: skip
    old = submit(cli)  # a job from before the tasks: accuracy is its primary metric
    old_metrics = {"dense_accuracy": 0.93, "accuracy": 0.91, "macro_f1": 0.9}
    server.finish_job(old["id"], "succeeded", stage="package", progress=1.0, metrics=old_metrics)
    r = cli("show", old["id"])
    assert "metrics: accuracy=0.91  dense_accuracy=0.93  macro_f1=0.9" in r.stdout


def test_watch_gives_up_after_timeout(cli: Cli) -> None:
    job = submit(cli)
    r = cli("watch", job["id"], "--interval", "0.1", "--timeout", "0.3")
    assert r.exit_code == Exit.TIMEOUT and "still queued" in r.stderr


def test_download_all_or_one_artifact(cli: Cli, server: Server, tmp_path: Path) -> None:
    job = submit(cli)
    model, report = os.urandom(300_000), b'{"ok": true}'
    server.add_artifact(job["id"], model)
    server.add_artifact(job["id"], report, kind="report", filename="report.json")
    out = tmp_path / "out"
    (out / "model.tar.gz.part").parent.mkdir()
    (out / "model.tar.gz.part").write_bytes(model[:1000])
    r = cli("--json", "download", job["id"], "--out", str(out))
    assert r.exit_code == 0, r.output
    got = {d["kind"]: d for d in json.loads(r.stdout)}
    assert Path(got["model"]["path"]).read_bytes() == model
    assert got["model"]["sha256"] == sha256(model)
    assert Path(got["report"]["path"]).read_bytes() == report
    r = cli("download", job["id"], "--artifact", "report", "--out", str(tmp_path / "one"))
    assert r.exit_code == 0 and f"sha256:{sha256(report)}" in r.stdout
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["report.json"]
    r = cli("download", job["id"], "--artifact", "nope", "--out", str(tmp_path / "one"))
    assert r.exit_code == Exit.ERROR and "no artifact 'nope'" in r.stderr


def test_download_digest_mismatch(cli: Cli, server: Server, tmp_path: Path) -> None:
    job = submit(cli)
    server.add_artifact(job["id"], b"bytes", sha256="cd" * 32)
    r = cli("download", job["id"], "--out", str(tmp_path))
    assert r.exit_code == Exit.DIGEST_MISMATCH and "does not match" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_uploads(cli: Cli, tmp_path: Path) -> None:
    r = cli("--json", "models", "upload", str(tiny_model_zip(tmp_path / "m.zip")),
            "--name", "tiny")  # fmt: skip
    model = json.loads(r.stdout)
    assert r.exit_code == 0 and model["name"] == "tiny"
    r = cli("datasets", "upload", str(tiny_dataset_csv(tmp_path / "d.csv")),
            "--text-columns", "text", "--label-column", "label")  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("uploaded data set ")
    assert model["id"] in cli("models", "list").stdout
    assert "d.csv" in cli("datasets", "list").stdout or "d" in cli("datasets", "list").stdout
    r = cli("models", "upload", str(tmp_path / "missing.zip"))
    assert r.exit_code == Exit.ERROR and "is not a file" in r.stderr


def test_console_entry_runs_without_torch_or_worker(server: Server) -> None:
    code = ("import runpy, sys; sys.argv = ['scalpel', '--json', 'jobs', '--limit', '1']\n"
            "try:\n    runpy.run_module('app.cli.main', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('worker')]\n"
            "assert not bad, bad\n")  # fmt: skip
    env = {**os.environ, "SCALPEL_URL": server.url, "SCALPEL_API_KEY": server.api_key}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), list)
