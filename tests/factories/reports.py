"""report.json documents as the worker writes them (worker.pipelines.report), for readers'
tests that run no pipeline: every key of the current shape, the numbers made up."""

from __future__ import annotations

import copy
from typing import Any

from app.reports import SCHEMA_VERSION
from app.schemas.job_spec import JobSpec


def _scores(accuracy: float) -> dict[str, Any]:
    per = {"precision": accuracy, "recall": accuracy, "f1": accuracy, "support": 8.0}
    return {
        "primary_metric": {"name": "accuracy", "value": accuracy},
        "accuracy": accuracy,
        "macro_f1": accuracy - 0.05,
        "per_class": {"negative": dict(per), "positive": dict(per)},
        "eval_examples": 16,
    }


def _size(raw: float) -> dict[str, float]:
    return {"raw_mb": raw, "gzip_mb": round(raw * 0.9, 4)}


def _onnx_lat(b1: float) -> dict[str, Any]:
    return {"batch_1_ms": b1, "batch_32_ms": 8 * b1, "throughput_b32_per_s": 4000.0 / b1,
            "runs_b1": 5, "runs_b32": 5}  # fmt: skip


def _parity(reference: str) -> dict[str, Any]:
    return {"reference": reference, "agreement": 1.0, "max_abs_diff": 1.5e-08, "n": 16,
            "unit": "examples"}  # fmt: skip


def _onnx_file(accuracy: float, b1: float, reference: str, file: str | None) -> dict[str, Any]:
    out = {**_scores(accuracy), "file": file, "file_size": _size(3.85)}
    if file is None:
        del out["file"]
    return {**out, "parity": _parity(reference), "latency_cpu_ms": _onnx_lat(b1)}


def structured_section() -> dict[str, Any]:
    """The `structured` section of a two-step job (stages.structured, report_section)."""
    step = {"kept_head_indices": [[0, 1], [1]], "predicted_latency_ms": 0.8,
            "calibration_tokens": 256, "calibration_batches": 2, "loss": 0.01,
            "sparsity": 0.2}  # fmt: skip
    return {
        "target_speedup": 1.5, "runtime": "onnxruntime-cpu", "steps": 2,
        "calibration_batches": 2, "damp": 0.01, "latency_batch_size": 1,
        "step_targets": [1.224744871391589, 1.5],
        "latency_table": {
            "version": 3,
            "key": {"cpu": "AMD EPYC", "int8_instructions": ["avx2"], "hidden": 32, "heads": 2,
                    "ffn": 64, "gated": False, "activation": "gelu", "batch": 1, "seq_len": 16,
                    "threads": 1, "precision": "fp32", "runtime": "onnxruntime-cpu"},
            "attention": {"counts": [0, 1, 2], "raw": [0.0, 1e-4, 2e-4],
                          "monotone": [0.0, 1e-4, 2e-4]},
            "ffn": {"counts": [0, 32, 64], "raw": [0.0, 1e-4, 2e-4],
                    "monotone": [0.0, 1e-4, 2e-4]},
            "rest": 1e-4, "rounds": 2, "iters": 2,
        },
        "latency_model": {"layers": 2, "dense_ms": 1.2, "fixed_ms": 0.2, "block_scale": 1.1,
                          "fixed_part": "fitted", "measured_dense_ms": 1.2,
                          "measured_student_ms": 1.2, "measured_minimal_ms": 0.4,
                          "best_speedup": 2.5},
        "plan_measurement": {"max_rounds": 4, "tolerance": 0.05, "method": "timed graphs"},
        "per_step": [
            {"step": 1, "target_speedup": 1.224744871391589, "kept_heads": [2, 1],
             "kept_neurons": [48, 40], "predicted_speedup": 1.25, "train_step": 0,
             "recovery_steps": 3, **step, **_plan(1, [_round(1, 1.22, 1.25, 1.21, True)])},
            {"step": 2, "target_speedup": 1.5, "kept_heads": [2, 1], "kept_neurons": [32, 24],
             "predicted_speedup": 1.52, "train_step": 3, "recovery_steps": 3, **step,
             **_plan(2, [_round(1, 1.5, 1.5, 1.3, False), _round(2, 1.7, 1.52, 1.45, True)])},
        ],
        "final": {"kept_heads": [2, 1], "kept_neurons": [32, 24],
                  "kept_head_indices": [[0, 1], [1]], "heads": 4, "heads_kept": 3,
                  "neurons": 128, "neurons_kept": 56, "predicted_latency_ms": 0.79,
                  "predicted_speedup": 1.52, "removed_parameters": 5000,
                  "total_parameters": 1000000, "fraction_removed": 0.005,
                  "plan_measured_speedup": 1.45},
        "measured_speedup": 1.4,
        "measured_over_predicted": 1.4 / 1.52,
        "plan_measured_speedup": 1.45,
        "measured_over_plan": 1.4 / 1.45,
        "plan_rounds": [
            {"step": 1, "round": 1, "internal_target_speedup": 1.22, "predicted_speedup": 1.25,
             "measured_speedup": 1.21, "chosen": True},
            {"step": 2, "round": 1, "internal_target_speedup": 1.5, "predicted_speedup": 1.5,
             "measured_speedup": 1.3, "chosen": False},
            {"step": 2, "round": 2, "internal_target_speedup": 1.7, "predicted_speedup": 1.52,
             "measured_speedup": 1.45, "chosen": True},
        ],
    }  # fmt: skip


def _round(n: int, internal: float, predicted: float, measured: float, chosen: bool) -> Any:
    """One planning round (structured_measure.PlanRound.as_dict)."""
    return {"round": n, "internal_target_speedup": internal, "predicted_speedup": predicted,
            "predicted_latency_ms": 1.2 / predicted, "measured_speedup": measured, "loss": 0.01,
            "kept_heads": [2, 1], "kept_neurons": [32, 24], "chosen": chosen}  # fmt: skip


def _plan(chosen: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A step row's planning keys (structured_measure.MeasuredPlan.as_row)."""
    kept = rounds[chosen - 1]
    return {"plan_measured_speedup": kept["measured_speedup"],
            "plan_internal_target_speedup": kept["internal_target_speedup"],
            "plan_round": chosen, "plan_met": True, "plan_stopped": "within_tolerance",
            "plan_rounds": rounds}  # fmt: skip


def report_json(*, recipe: str | None = "obert-80", structured: bool = False) -> dict[str, Any]:
    """A sequence-classification job's report.json, int8 quantized: of `recipe` (None:
    magnitude pruning), or of method structured with `structured`."""
    body: dict[str, Any] = {"model": "minilm-l6", "dataset": {"name": "sst2", "max_length": 16}}
    body["quantization"] = {"method": "dynamic_int8"}
    if structured:
        body["pruning"] = {"method": "structured", "structured": {"target_speedup": 1.5}}
    elif recipe is not None:
        body["recipe"] = recipe
    else:
        body["pruning"] = {"method": "magnitude", "sparsity": 0.6}
    spec = JobSpec.model_validate(body).model_dump(mode="json")
    int8_onnx = _onnx_file(0.75, 0.2, "pytorch_int8", "model-int8.onnx")
    int8_onnx |= {"eval_batch_size": 64, "batch_1": _scores(0.6875)}
    int8_onnx |= {
        "speedup_vs_dense": {"batch_1": 2.0, "batch_32": 2.1},
        "speedup_vs_fp32": {"batch_1": 1.3, "batch_32": 1.4},
    }
    fp32_onnx = _onnx_file(0.8125, 0.26, "pytorch_fp32", "model.onnx")
    fp32_onnx["speedup_vs_dense"] = {"batch_1": 1.5, "batch_32": 1.6}
    layer = {
        "layer": 0,
        "compacted": True,
        "neurons": 64,
        "kept": 48,
        "constant": 0,
        "dead": 16,
        "heads": 2,
        "heads_compacted": True,
        "heads_kept": 2,
        "heads_removed": [],
        "heads_in_graph": 2,
    }
    sha = "ab" * 32
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": "0b7d3f8e-2a1c-4d5e-9f60-1a2b3c4d5e6f",
        "task": "sequence_classification",
        "spec": spec,
        "model": {
            "source": "builtin:minilm-l6",
            "had_trained_head": False,
            "finetuned_dense": True,
        },
        "dataset": {
            "name": "sst2",
            "label_names": ["negative", "positive"],
            "train_examples": 48,
            "train_items": 48,
            "dev_examples": 16,
            "dev_items": 16,
        },
        "max_length": 16,
        "device": "cpu",
        "cpu": {
            "model": "AMD EPYC",
            "cores": 2,
            "threads": 2,
            "int8_instructions": ["avx2", "avx512_vnni"],
        },
        "dense": {
            **_scores(0.875),
            "parameters": 1016226,
            "encoder_sparsity": 0.0,
            "file_size": _size(3.8843),
            "latency_cpu_ms": {"batch_1_ms": 4.6, "batch_32_ms": 23.9},
        },
        "compressed": {
            **_scores(0.8125),
            "parameters": 999138,
            "num_hidden_layers": 2,
            "kept_layers": [0, 2],
            "sparsity": {
                "overall": 0.6,
                "per_layer": {"bert.encoder.layer.0.output.dense": 0.6},
                "per_encoder_layer": {"0": 0.59, "1": 0.61},
                "zeros": 9830,
                "total": 16384,
            },
            "file_size": _size(3.8157),
            "latency_cpu_ms": {"batch_1_ms": 3.6, "batch_32_ms": 20.1},
        },
        "int8": {
            **_scores(0.75),
            "file_size": _size(1.1),
            "latency_cpu_ms": {"batch_1_ms": 2.5, "batch_32_ms": 12.0},
        },
        "pruning": {
            "method": spec["pruning"]["method"],
            "target_sparsity": None if structured else spec["pruning"]["sparsity"],
            "structure": spec["pruning"]["structure"],
            "scope": spec["pruning"]["scope"],
            "schedule": spec["pruning"]["schedule"]["kind"],
            "applied": [
                {
                    "step": 2,
                    "sparsity": 0.525,
                    "primary_metric": {"name": "accuracy", "value": 0.8},
                },
                {"step": 4, "sparsity": 0.6},
            ],
        },
        "onnx": {
            "runtime": "onnxruntime 1.32.0",
            "opset": 17,
            "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
            "outputs": [{"name": "logits", "axes": ["batch"]}],
            "int8_method": "onnxruntime quantize_dynamic (QInt8 weights, MatMul/Gemm)",
            "providers": ["CPUExecutionProvider"],
            "max_length": 16,
            "min_fp32_agreement": 0.995,
            "latency_method": "median of timed runs",
            "compaction": {
                "applied": True,
                "method": "zero rows removed",
                "ffn_neurons": 64,
                "ffn_neurons_kept": 48,
                "layers": [layer],
                "attention_heads": 2,
                "attention_heads_kept": 2,
                "heads_per_layer": [2],
                "pytorch_model": "keeps its shapes",
            },
            "dense_fp32": _onnx_file(0.875, 0.38, "pytorch_fp32", None),
            "fp32": fp32_onnx,
            "int8": int8_onnx,
        },
        "structured": structured_section() if structured else None,
        "teacher_cache": {
            "enabled": True,
            "max_bytes": 536870912,
            "items": 48,
            "bytes": 384,
            "hit_batches": 6,
            "teacher_batches": 2,
            "full": False,
        },
        "training_steps": {"finetune_dense": 4, "recover": 6},
        "resumed_from": None,
        "stage_seconds": {"load": 0.4, "finetune_dense": 1.6, "recover": 2.1, "package": 1.3},
        "total_seconds": 17.951,
        "versions": {
            "scalpel": "0.1.0",
            "torch": "2.13.0+cpu",
            "onnx": "1.23.2",
            "onnxruntime": "1.32.0",
            "transformers": "5.24.0",
            "python": "3.11.7",
        },
        "artifacts": {
            kind: {"filename": name, "sha256": sha}
            for kind, name in (
                ("model", "model.tar.gz"),
                ("model_int8", "model-int8.tar.gz"),
                ("model_onnx", "model.onnx"),
                ("model_int8_onnx", "model-int8.onnx"),
                ("report_md", "report.md"),
            )
        },
    }


def previous_shape(report: dict[str, Any]) -> dict[str, Any]:
    """`report` as report.py wrote it before the report had a schema (no `schema_version`)."""
    old = copy.deepcopy(report)
    del old["schema_version"]
    return old
