"""The job's summary (its `metrics` column) read from the report model, and report.json loaded
back (the whole pipeline writing it: test_compress.py)."""

from __future__ import annotations

import json
from pathlib import Path

from app.reports import Report
from tests.factories.reports import report_json
from worker.pipelines.report import load_report, summary


def test_the_summary_holds_each_models_primary_metric_and_the_headline_numbers() -> None:
    data = report_json()
    got = summary(Report.model_validate(data))
    assert got == {
        "task": "sequence_classification",
        "primary_metric": {"name": "accuracy", "value": 0.8125},
        "dense_primary_metric": {"name": "accuracy", "value": 0.875},
        "accuracy": 0.8125,
        "macro_f1": 0.7625,
        "dense_accuracy": 0.875,
        "sparsity": 0.6,
        "parameters": 999138,
        "model_size_mb": 3.8157,
        "model_gzip_mb": 3.4341,
        "latency_b1_ms": 3.6,
        "latency_b32_ms": 20.1,
        "dense_latency_b1_ms": 4.6,
        "stage_seconds": data["stage_seconds"],
        "total_seconds": 17.951,
        "int8_primary_metric": {"name": "accuracy", "value": 0.75},
        "int8_accuracy": 0.75,
        "int8_size_mb": 1.1,
        "int8_latency_b1_ms": 2.5,
        "onnx_primary_metric": {"name": "accuracy", "value": 0.8125},
        "onnx_accuracy": 0.8125,
        "onnx_agreement": 1.0,
        "onnx_int8_primary_metric": {"name": "accuracy", "value": 0.75},
        "onnx_int8_accuracy": 0.75,
        "onnx_int8_latency_b1_ms": 0.2,
        "onnx_int8_speedup_b1": 2.0,
    }


def test_the_summary_of_a_regression_report_names_its_metrics() -> None:
    data = report_json()
    for block in (data["dense"], data["compressed"], data["onnx"]["fp32"], data["int8"]):
        for key in ("accuracy", "macro_f1", "per_class"):
            del block[key]
        block |= {"primary_metric": {"name": "spearman", "value": 0.87}, "spearman": 0.87,
                  "pearson": 0.88, "mse": 0.51}  # fmt: skip
    data["task"], data["int8"], data["onnx"] = "regression", None, None
    got = summary(Report.model_validate(data))
    assert got["primary_metric"] == {"name": "spearman", "value": 0.87}
    assert {k: got[k] for k in ("spearman", "pearson", "mse", "dense_spearman")} == {
        "spearman": 0.87, "pearson": 0.88, "mse": 0.51, "dense_spearman": 0.87
    }  # fmt: skip
    assert "accuracy" not in got and "int8_size_mb" not in got and "onnx_agreement" not in got


def test_load_report_reads_report_json(tmp_path: Path) -> None:
    data = report_json(structured=True)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    report = load_report(path)
    assert report.structured is not None and report.structured.final.heads_kept == 3
    assert report.model_dump(mode="json") == data
