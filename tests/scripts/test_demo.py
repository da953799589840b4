"""scripts/demo.py: the job it submits and what it prints of the result (the full run is
`make demo`, by hand)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.reports import Report
from app.schemas.job_spec import JobSpec
from scalpel_client import Artifact, Job, ScalpelClient
from scripts import demo
from tests.factories.reports import report_json

ROOT = Path(__file__).resolve().parents[2]


def _report(**changes: Any) -> Report:
    body = report_json(recipe="structured-2x-int8")
    body["dense"]["parameters"] = 22_713_986
    body["compressed"]["parameters"] = 22_713_986
    body["compressed"]["sparsity"]["zeros"] = 5_400_000
    body.update(changes)
    return Report.model_validate(body)


def _rows(table: str) -> dict[str, list[str]]:
    """The table's rows by label (the header row under ""), cells split on 2+ spaces."""
    rows: dict[str, list[str]] = {}
    for line in table.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if line.startswith(" "):  # the header row has an empty label
            rows[""] = cells
        elif len(cells) > 1:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_demo_runs_the_structured_int8_recipe_trimmed() -> None:
    spec = JobSpec.model_validate(demo.DEMO_SPEC)
    assert spec.recipe is not None and spec.recipe.startswith("structured-2x-int8@")
    assert spec.pruning.method == "structured"
    assert spec.distillation.enabled
    assert spec.quantization.method == "qat_int8"
    assert spec.dataset.name == "tweets" and spec.dataset.max_length == 64
    assert spec.training.recovery_max_steps is not None


def test_budget_line_says_what_the_demo_trims() -> None:
    spec = {
        "dataset": {"max_train_examples": 100, "max_eval_examples": 50, "max_length": 32},
        "training": {"max_steps": 7, "recovery_max_steps": 9},
        "pruning": {"structured": {"steps": 3}},
        "quantization": {"qat_steps": 4},
    }
    assert demo.budget_text(spec) == (
        "trimmed for the demo: 100 training and 50 dev examples of 32 tokens; 7 dense "
        "fine-tuning steps, 3 structured steps with 9 recovery steps in all, 4 QAT steps"
    )
    assert demo.budget_text().startswith("trimmed for the demo: ")  # the demo's own spec


def test_summary_compares_the_onnx_files_with_the_dense_one() -> None:
    table = demo.format_summary(_report())
    rows = _rows(table)
    assert rows[""] == ["dense", "compressed", "compressed int8 *"]
    assert rows["runtime"] == ["fp32", "fp32", "int8"]
    assert rows["Accuracy (dev)"] == ["87.50%", "81.25%", "75.00%"]
    assert rows["encoder sparsity"] == ["0.0%", "60.0%", "60.0%"]
    assert rows["parameters kept"] == ["22.7M", "17.3M", "17.3M"]
    assert rows["size on disk (MiB)"] == ["3.9", "3.9", "3.9"]
    assert rows["latency, ONNX Runtime b1 (ms)"] == ["0.38", "0.26", "0.20"]
    assert rows["speedup at batch 1"] == ["1.00x", "1.46x", "1.90x"]
    assert "* the recommended artifact (model-int8.onnx)" in table
    assert table.splitlines()[-1] == "measured on AMD EPYC (2 cores, 2 threads), sequence length 16"


def test_summary_without_onnx_files_compares_the_pytorch_models() -> None:
    rows = _rows(demo.format_summary(_report(onnx=None)))
    assert rows[""] == ["dense", "compressed", "compressed int8"]
    assert rows["latency, PyTorch b1 (ms)"] == ["4.60", "3.60", "2.50"]
    assert rows["speedup at batch 1"] == ["1.00x", "1.28x", "1.84x"]


def test_summary_names_the_tasks_primary_metric() -> None:
    body = report_json()
    for block in (body["dense"], body["compressed"], body["int8"], *body["onnx"].values()):
        if isinstance(block, dict) and "primary_metric" in block:
            block["primary_metric"] = {"name": "macro_f1", "value": block["macro_f1"]}
    rows = _rows(demo.format_summary(Report.model_validate(body)))
    assert rows["Macro-F1 (dev)"] == ["82.50%", "76.25%", "70.00%"]


def test_summary_without_cpu_says_so() -> None:
    table = demo.format_summary(_report(cpu=None))
    assert table.splitlines()[-1] == "measured on an unrecorded CPU, sequence length 16"


def _artifact(kind: str, filename: str, size: int) -> Artifact:
    return {
        "id": kind, "job_id": "j", "kind": kind, "filename": filename, "media_type": "x",
        "size_bytes": size, "sha256": "ab" * 32, "created_at": "", "download_url": "",
        "note": None, "recommended": kind in ("model_onnx", "model_int8_onnx"), "expired_at": None,
    }  # fmt: skip


def test_files_list_puts_the_recommended_int8_onnx_first() -> None:
    files = [
        (_artifact(kind, name, 3 * 2**20), Path("var/demo/j") / name)
        for kind, name in (
            ("model", "model.tar.gz"),
            ("model_int8", "model-int8.tar.gz"),
            ("model_int8_onnx", "model-int8.onnx"),
            ("report", "report.json"),
            ("plot_sparsity", "sparsity.png"),
        )
    ]
    heading, first, *rest = demo.format_files(files).splitlines()
    assert heading == "== files in var/demo/j/ =="
    assert first.split()[:3] == ["model-int8.onnx", "3.0", "MiB"] and "recommended" in first
    int8_pt = next(line for line in rest if "model-int8.tar.gz" in line)
    assert "needs Scalpel's code" in int8_pt
    assert next(line for line in rest if "sparsity.png" in line).endswith("plot: sparsity")


def test_files_in_several_folders_are_listed_by_path() -> None:
    files = [
        (_artifact("report", "report.json", 2048), Path("a/report.json")),
        (_artifact("model_onnx", "model.onnx", 512), Path("b/model.onnx")),
    ]
    lines = demo.format_files(files).splitlines()
    assert lines[0] == "== files =="
    assert lines[1].split()[:3] == ["b/model.onnx", "0.5", "KiB"]
    assert lines[2].split()[:3] == ["a/report.json", "2.0", "KiB"]


def test_dashboard_url_is_the_dashboards_job_route() -> None:
    app_js = (ROOT / "app" / "dashboard" / "static" / "app.js").read_text(encoding="utf-8")
    # the dashboard routes on location.hash with a JS regex (valid Python regex syntax too)
    found = re.search(r"/(\^#[^\n]*?jobs[^\n]*?\$)/\.exec\(location\.hash\)", app_js)
    assert found is not None, "the dashboard's job route moved"
    url = demo.dashboard_url("0b7d3f8e-2a1c", 8000)
    page, _, fragment = url.partition("#")
    assert page == "http://127.0.0.1:8000/dashboard/"
    match = re.match(found.group(1), "#" + fragment)
    assert match is not None and match.group(1) == "0b7d3f8e-2a1c"


def test_progress_bar_shows_progress_elapsed_and_stage() -> None:
    line = demo.bar(0.5, "structured", "running", 125.0)
    assert line == "\r[###############...............]  50.0%  2:05 running   structured"


# -- run_job, against a stand-in API (httpx.MockTransport) ---------------------------------

JOB_ID = "5f0c1d2e-0000-4000-8000-000000000001"
FILES = {"model-int8.onnx": b"onnx bytes", "report.json": b'{"x": 1}'}


def _job(status: str) -> dict[str, Any]:
    path = f"/v1/jobs/{JOB_ID}"
    keys = dict.fromkeys(Job.__required_keys__)  # keys the client requires, added later too
    return keys | {
        "id": JOB_ID, "name": None, "labels": {}, "status": status, "stage": "package",
        "progress": 1.0 if status == "succeeded" else 0.5, "cancel_requested": False,
        "spec": {}, "metrics": {}, "error": None, "created_at": "", "started_at": None,
        "finished_at": None, "updated_at": status,
        "links": {"self": path, "artifacts": path + "/artifacts", "events": path + "/events"},
    }  # fmt: skip


class StandIn:
    """The API routes run_job calls; `interrupt`: the job poll raises KeyboardInterrupt."""

    def __init__(self, interrupt: bool = False) -> None:
        self.interrupt = interrupt
        self.calls: list[str] = []
        self.submitted: Any = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        route = f"{request.method} {request.url.path}"
        self.calls.append(route)
        if route == f"GET /v1/recipes/{demo.RECIPE}":
            recipe = {"name": demo.RECIPE, "version": 1, "spec": {}, "ref": f"{demo.RECIPE}@1",
                      "description": "d"}  # fmt: skip
            return httpx.Response(200, json=recipe)
        if route == "POST /v1/jobs":
            self.submitted = json.loads(request.content)
            return httpx.Response(202, json=_job("queued"))
        if route == f"GET /v1/jobs/{JOB_ID}":
            if self.interrupt:
                raise KeyboardInterrupt
            return httpx.Response(200, json=_job("succeeded"))
        if route == f"POST /v1/jobs/{JOB_ID}/cancel":
            return httpx.Response(202, json=_job("canceled"))
        if route == f"GET /v1/jobs/{JOB_ID}/artifacts":
            return httpx.Response(200, json={"items": [
                {**_artifact(name.replace(".", "_"), name, len(body)),
                 "sha256": hashlib.sha256(body).hexdigest(), "download_url": f"/v1/files/{name}"}
                for name, body in FILES.items()
            ], "next_page_token": None})  # fmt: skip
        name = request.url.path.removeprefix("/v1/files/")
        if request.method == "GET" and name in FILES:
            body = FILES[name]
            headers = {"X-Checksum-SHA256": hashlib.sha256(body).hexdigest()}
            return httpx.Response(200, content=body, headers=headers)
        return httpx.Response(404, json={"code": "not_found", "title": "Not Found"})


def _client(api: StandIn) -> ScalpelClient:
    http = httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(api))
    return ScalpelClient("http://api.test", "sk_test", http=http)


def test_run_job_submits_the_demo_spec_and_downloads_each_file_by_name(tmp_path: Path) -> None:
    api = StandIn()
    with _client(api) as client:
        job, files = demo.run_job(client, tmp_path, timeout_s=10)
    assert job["status"] == "succeeded"
    assert api.submitted == demo.DEMO_SPEC
    for name, body in FILES.items():
        assert (tmp_path / JOB_ID / name).read_bytes() == body  # one file each, its own name
    assert sorted(p.name for _, p in files) == sorted(FILES)


def test_run_job_cancels_the_job_when_interrupted(tmp_path: Path) -> None:
    api = StandIn(interrupt=True)
    with _client(api) as client, pytest.raises(SystemExit, match="canceled job"):
        demo.run_job(client, tmp_path, timeout_s=10)
    assert api.calls[-1] == f"POST /v1/jobs/{JOB_ID}/cancel"
