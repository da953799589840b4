"""A job's `metrics` column as the worker leaves it, for readers' tests that run no worker:
the keys the load, evaluate_dense and evaluate stages write as the job runs, with the summary
of `tests.factories.reports.report_json()` (`worker.pipelines.report.summary`) merged over
them when it succeeds. tests/worker/pipelines/test_summary_schema.py holds the summary part to
what the worker's own function writes."""

from __future__ import annotations

import copy
from typing import Any

# worker.pipelines.stages.load
LOAD_STAGE: dict[str, Any] = {
    "task": "sequence_classification",
    "train_examples": 48,
    "train_items": 48,
    "dev_examples": 16,
    "num_labels": 2,
    "model_has_trained_head": False,
    "device": "cpu",
}
# worker.pipelines.stages.dense.dense_metrics: every scalar metric of the dense model
DENSE_STAGE: dict[str, Any] = {
    "dense_primary_metric": {"name": "accuracy", "value": 0.875},
    "dense_accuracy": 0.875,
    "dense_macro_f1": 0.825,
}
# worker.pipelines.stages.evaluate: the compressed model's, and the PyTorch int8 model's
EVALUATE_STAGE: dict[str, Any] = {
    "primary_metric": {"name": "accuracy", "value": 0.8125},
    "accuracy": 0.8125,
    "macro_f1": 0.7625,
    "int8_primary_metric": {"name": "accuracy", "value": 0.75},
    "int8_accuracy": 0.75,
}
# worker.pipelines.report.summary(report_json())
SUMMARY: dict[str, Any] = {
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
    "stage_seconds": {"load": 0.4, "finetune_dense": 1.6, "recover": 2.1, "package": 1.3},
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


def succeeded_metrics() -> dict[str, Any]:
    """A succeeded sequence-classification job's metrics, every key of the current shape."""
    return copy.deepcopy({**LOAD_STAGE, **DENSE_STAGE, **EVALUATE_STAGE, **SUMMARY})


def running_metrics() -> dict[str, Any]:
    """A job running its recover stage: the load and dense stages' keys only."""
    return copy.deepcopy({**LOAD_STAGE, **DENSE_STAGE})


def previous_shape() -> dict[str, Any]:
    """A job of a version before tasks (classification only): no task, no {name, value}
    primary metrics, the accuracy keys alone; and a key this version does not know."""
    old = {k: v for k, v in succeeded_metrics().items() if "primary_metric" not in k}
    del old["task"]
    old["onnx_max_abs_logit_diff"] = 1.5e-08
    return old
