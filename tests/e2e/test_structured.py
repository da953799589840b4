"""End to end: a structured-pruning job (method "structured": heads and FFN neurons removed
to a speedup target on a latency table measured by the worker) on a tiny BERT uploaded
through the HTTP API, run by a real Celery worker on Redis and PostgreSQL; its ONNX graph is
physically smaller than the dense one and matches the pruned PyTorch model."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.test_redis_postgres import download, run_to_success, stack, tiny_job
from tests.factories.onnx_files import onnx_parameters
from tests.factories.tiny_bert import archive, write_tiny_bert

pytestmark = pytest.mark.e2e
__all__ = ["stack"]  # the fixture


def test_a_structured_job_exports_a_smaller_graph_that_matches(
    stack: tuple[httpx.Client, list[Path]], tmp_path: Path
) -> None:
    client, logs = stack
    # wide enough (hidden 256, 128 tokens) that compute, not ONNX Runtime's per-op cost, is
    # what the removed heads and neurons save
    folder = write_tiny_bert(tmp_path / "tiny", hidden=256)
    with archive(folder, tmp_path / "tiny.zip", "zip").open("rb") as f:
        r = client.post("/v1/models", files={"file": ("tiny.zip", f, "application/zip")})
    assert r.status_code == 201, r.text
    spec = tiny_job(
        str(r.json()["id"]),
        pruning={"method": "structured",
                 "structured": {"target_speedup": 1.1, "steps": 2, "calibration_batches": 2}},
        distillation={"enabled": True},
        quantization={"method": "dynamic_int8"},
        training={"max_steps": 4, "recovery_max_steps": 6, "batch_size": 8},
    )  # fmt: skip
    spec["dataset"]["max_length"] = 128
    _, arts, report = run_to_success(client, spec, logs, tmp_path)
    assert {"model", "model_onnx", "model_int8_onnx", "report", "plot_structured"} <= set(arts)
    structured = report["structured"]
    assert [s["step"] for s in structured["per_step"]] == [1, 2]
    # the plan is timed as a whole graph and re-aimed until it measures the target
    tolerance = structured["plan_measurement"]["tolerance"]
    assert structured["plan_measured_speedup"] >= 1.1 * (1 - tolerance), structured["plan_rounds"]
    assert structured["measured_speedup"] is not None
    compaction = report["onnx"]["compaction"]
    removed_heads = compaction["attention_heads"] - compaction["attention_heads_kept"]
    removed_neurons = compaction["ffn_neurons"] - compaction["ffn_neurons_kept"]
    assert removed_heads + removed_neurons > 0
    assert report["onnx"]["fp32"]["parity"]["agreement"] >= 0.995
    small = onnx_parameters(download(client, arts["model_onnx"], tmp_path / "model.onnx"))
    # the graph lost the removed rows and columns (ONNX adds ~1k elements of constants)
    assert small < report["dense"]["parameters"] - structured["final"]["removed_parameters"] // 2
