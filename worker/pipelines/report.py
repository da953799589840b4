"""The `measure`, `export` and `package` stages: save, measure from the saved files, export
ONNX (see `export_stage`), archive, and write report.json, report.md and its PNG plots.

Sparsity and parameter count are measured on the model re-loaded from the saved
`model.safetensors` (what the user downloads), not on the in-memory model.
"""

from __future__ import annotations

import copy
import json
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from worker.pipelines import host, measure
from worker.pipelines.export_stage import ONNX_FP32, ONNX_INT8, export_stage
from worker.pipelines.package import make_tar_gz, save_hf_dir, save_int8_dir, weights_file
from worker.pipelines.report_files import write_report_files

if TYPE_CHECKING:
    from worker.pipelines.context import PipelineContext
    from worker.pipelines.state import RunState

MODEL_ARCHIVE = "model.tar.gz"
INT8_ARCHIVE = "model-int8.tar.gz"
REPORT = "report.json"
GZIP = "application/gzip"
JSON = "application/json"
ONNX = "application/octet-stream"


def _cpu(model: nn.Module) -> nn.Module:
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    return model if on_cpu else copy.deepcopy(model).to("cpu")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import onnx
    import onnxruntime
    import transformers

    try:
        scalpel = version("scalpel")
    except PackageNotFoundError:
        scalpel = "unknown"
    return {
        "scalpel": scalpel,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _latency(
    ctx: PipelineContext, model: nn.Module, tokenizer: Any, max_length: int
) -> dict[str, float]:
    b1, b32 = ctx.latency_iters
    return measure.cpu_latencies(_cpu(model), tokenizer, max_length, iters_b1=b1, iters_b32=b32)


def _sparsity(model: nn.Module) -> dict[str, Any]:
    from worker.compression import encoder_linear_targets, sparsity_of

    targets = encoder_linear_targets(model)
    rep = sparsity_of(targets)
    zeros: dict[str, int] = {}
    total: dict[str, int] = {}
    for name, lin in targets.items():
        block = _block_index(name)
        zeros[block] = zeros.get(block, 0) + int((lin.weight == 0).sum())
        total[block] = total.get(block, 0) + lin.weight.numel()
    return {
        "overall": rep.overall,
        "per_layer": dict(rep.per_layer),  # per Linear module
        "per_encoder_layer": {b: zeros[b] / total[b] for b in total},  # per transformer block
        "zeros": rep.zeros,
        "total": rep.total,
    }


def _block_index(name: str) -> str:
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "layer" and parts[i + 1].isdigit():
            return parts[i + 1]
    return "other"


def measure_stage(state: RunState, ctx: PipelineContext) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    assert state.model is not None and state.dense is not None and state.loaded is not None
    ctx.reporter.stage("measure")
    tok, max_len = state.loaded.tokenizer, state.spec.dataset.max_length
    out_dir = ctx.scratch / "out"
    model_dir = save_hf_dir(state.model, tok, out_dir / "model")
    dense_dir = save_hf_dir(state.dense, tok, ctx.scratch / "dense")
    saved = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    ctx.reporter.step(0.1)
    dense_targets_sparsity = _sparsity(state.dense)
    m: dict[str, Any] = {
        "dense": {
            "parameters": measure.count_parameters(state.dense),
            "encoder_sparsity": dense_targets_sparsity["overall"],
            "file_size": measure.file_sizes_mb(weights_file(dense_dir)),
            "latency_cpu_ms": _latency(ctx, state.dense, tok, max_len),
        },
        "compressed": {
            "parameters": measure.count_parameters(saved),
            "num_hidden_layers": int(saved.config.num_hidden_layers),
            "kept_layers": state.kept_layers,
            "sparsity": _sparsity(saved),
            "file_size": measure.file_sizes_mb(weights_file(model_dir)),
        },
    }
    ctx.reporter.step(0.4)
    m["compressed"]["latency_cpu_ms"] = _latency(ctx, saved, tok, max_len)
    ctx.reporter.step(0.7)
    if state.qmodel is not None:
        int8_dir = save_int8_dir(
            state.qmodel,
            state.model,
            tok,
            out_dir / "model-int8",
            method=state.spec.quantization.method,
        )
        m["int8"] = {
            "file_size": measure.file_sizes_mb(int8_dir / "model.int8.safetensors"),
            "latency_cpu_ms": _latency(ctx, state.qmodel, tok, max_len),
        }
    return m


def _applied(state: RunState) -> list[dict[str, Any]]:
    """Pruning steps, with the dev accuracy measured right after each where recorded."""
    out: list[dict[str, Any]] = []
    for step, sparsity in state.masks.applied if state.masks else []:
        entry: dict[str, Any] = {"step": step, "sparsity": sparsity}
        if (step, sparsity) in state.prune_accuracy:
            entry["accuracy"] = state.prune_accuracy[(step, sparsity)]
        out.append(entry)
    return out


def _eval_block(ev: Any) -> dict[str, Any]:
    return {
        "accuracy": ev.accuracy,
        "macro_f1": ev.macro_f1,
        "per_class": ev.per_class,
        "eval_examples": ev.n,
    }


def package_outputs(state: RunState, ctx: PipelineContext) -> dict[str, Any]:
    assert state.data is not None and state.loaded is not None
    assert state.dense_eval is not None and state.eval is not None
    m = measure_stage(state, ctx)
    onnx = export_stage(state, ctx)
    ctx.reporter.stage("package")
    spec = state.spec
    out_dir = ctx.scratch / "out"
    archives: dict[str, dict[str, str]] = {}
    sha = ctx.add_artifact(
        "model", make_tar_gz(out_dir / "model", ctx.scratch / MODEL_ARCHIVE), MODEL_ARCHIVE, GZIP
    )
    archives["model"] = {"filename": MODEL_ARCHIVE, "sha256": sha}
    if state.qmodel is not None:
        path = make_tar_gz(out_dir / "model-int8", ctx.scratch / INT8_ARCHIVE)
        sha = ctx.add_artifact("model_int8", path, INT8_ARCHIVE, GZIP)
        archives["model_int8"] = {"filename": INT8_ARCHIVE, "sha256": sha}
    for kind, path, name in (
        ("model_onnx", onnx.fp32, ONNX_FP32),
        ("model_int8_onnx", onnx.int8, ONNX_INT8),
    ):
        archives[kind] = {"filename": name, "sha256": ctx.add_artifact(kind, path, name, ONNX)}
    ctx.reporter.step(0.8)
    ctx.reporter.end()
    report: dict[str, Any] = {
        "job_id": ctx.job_id,
        "spec": spec.model_dump(mode="json"),
        "model": {
            "source": state.loaded.source,
            "had_trained_head": state.loaded.has_trained_head,
            "finetuned_dense": state.finetuned,
        },
        "dataset": {
            "name": state.data.name,
            "label_names": state.data.label_names,
            "train_examples": len(state.data.train),
            "dev_examples": len(state.data.dev),
        },
        "max_length": spec.dataset.max_length,
        "device": str(ctx.device),
        "cpu": host.cpu_info(torch.get_num_threads()),
        "dense": {**_eval_block(state.dense_eval), **m["dense"]},
        "compressed": {**_eval_block(state.eval), **m["compressed"]},
        "int8": (
            {**_eval_block(state.int8_eval), **m["int8"]} if state.int8_eval is not None else None
        ),
        "pruning": {
            "method": spec.pruning.method,
            "target_sparsity": spec.pruning.sparsity,
            "structure": spec.pruning.structure,
            "scope": spec.pruning.scope,
            "schedule": spec.pruning.schedule.kind,
            "applied": _applied(state),
        },
        "onnx": onnx.section,
        "training_steps": state.steps,
        "resumed_from": state.resumed_from,
        "stage_seconds": dict(ctx.reporter.stage_seconds),
        "total_seconds": round(time.monotonic() - state.wall_start, 3),
        "versions": _versions(),
        "artifacts": archives,
    }
    for kind, path, media in write_report_files(report, ctx.scratch / "report"):
        archives[kind] = {
            "filename": path.name,
            "sha256": ctx.add_artifact(kind, path, path.name, media),
        }
    report_path = ctx.scratch / REPORT
    report_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    sha = ctx.add_artifact("report", report_path, REPORT, JSON)
    return summary(report)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers kept on the job row (the report holds the rest)."""
    c, d = report["compressed"], report["dense"]
    out: dict[str, Any] = {
        "dense_accuracy": d["accuracy"],
        "accuracy": c["accuracy"],
        "macro_f1": c["macro_f1"],
        "sparsity": c["sparsity"]["overall"],
        "parameters": c["parameters"],
        "model_size_mb": c["file_size"]["raw_mb"],
        "model_gzip_mb": c["file_size"]["gzip_mb"],
        "latency_b1_ms": c["latency_cpu_ms"]["batch_1_ms"],
        "latency_b32_ms": c["latency_cpu_ms"]["batch_32_ms"],
        "dense_latency_b1_ms": d["latency_cpu_ms"]["batch_1_ms"],
        "stage_seconds": report["stage_seconds"],
        "total_seconds": report["total_seconds"],
    }
    if report["int8"] is not None:
        out["int8_accuracy"] = report["int8"]["accuracy"]
        out["int8_size_mb"] = report["int8"]["file_size"]["raw_mb"]
        out["int8_latency_b1_ms"] = report["int8"]["latency_cpu_ms"]["batch_1_ms"]
    onnx = report.get("onnx")
    if onnx:
        out["onnx_accuracy"] = onnx["fp32"]["accuracy"]
        out["onnx_agreement"] = onnx["fp32"]["parity"]["agreement"]
        out["onnx_int8_accuracy"] = onnx["int8"]["accuracy"]
        out["onnx_int8_latency_b1_ms"] = onnx["int8"]["latency_cpu_ms"]["batch_1_ms"]
        out["onnx_int8_speedup_b1"] = onnx["int8"]["speedup_vs_dense"]["batch_1"]
    return out


def load_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
