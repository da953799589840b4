"""The `measure`, `export` and `package` stages: save, measure from the saved files, export
ONNX (see `export_stage`), archive, and write report.json (`app.reports.Report`), report.md
and its PNG plots.

Sparsity and parameter count are measured on the model re-loaded from the saved
`model.safetensors` (what the user downloads), not on the in-memory model.
"""

from __future__ import annotations

import copy
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from app.reports import (
    SCHEMA_VERSION,
    AppliedStep,
    ArtifactRef,
    CompressedBlock,
    CpuInfo,
    DatasetInfo,
    DenseBlock,
    Int8Block,
    ModelInfo,
    OnnxSection,
    PrimaryMetric,
    Pruning,
    Report,
    ResumedFrom,
    StructuredSection,
    TeacherCache,
    Versions,
)
from worker.pipelines import host, measure
from worker.pipelines.architecture import model_config
from worker.pipelines.export_stage import ONNX_FP32, ONNX_INT8, OnnxExport
from worker.pipelines.package import make_tar_gz, save_hf_dir, save_int8_dir, weights_file
from worker.pipelines.report_files import write_report_files
from worker.pipelines.stages.dense import Dense
from worker.pipelines.stages.evaluate import Evaluated
from worker.pipelines.stages.load import Loaded
from worker.pipelines.stages.quantize import Quantized
from worker.pipelines.stages.recover import Recovered
from worker.pipelines.structured_plan import report_section

if TYPE_CHECKING:
    from worker.pipelines.context import PipelineContext

MODEL_ARCHIVE = "model.tar.gz"
INT8_ARCHIVE = "model-int8.tar.gz"
REPORT = "report.json"
GZIP = "application/gzip"
JSON = "application/json"
ONNX = "application/octet-stream"


@dataclass(frozen=True)
class Outcome:
    """What the stages made, for the `measure`, `export` and `package` stages."""

    loaded: Loaded
    dense: Dense
    compressed: Recovered
    quantized: Quantized
    evaluated: Evaluated
    resumed_from: dict[str, Any] | None  # the checkpoint this run resumed from
    wall_start: float  # time.monotonic() when the run started

    @property
    def steps(self) -> dict[str, int]:
        """Training steps by stage, in the order the stages ran."""
        return {**self.dense.steps, **self.compressed.steps, **self.quantized.steps}


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
    """Over the family's full prunable set (every layer's attention and feed-forward
    matrices, as its table entry lists them)."""
    from worker.compression import sparsity_of
    from worker.pipelines.architecture import layer_prefix, prunable_targets, target_layer

    targets = prunable_targets(model)
    prefix = layer_prefix(model)
    rep = sparsity_of(targets)
    zeros: dict[str, int] = {}
    total: dict[str, int] = {}
    for name, lin in targets.items():
        block = target_layer(name, prefix)
        zeros[block] = zeros.get(block, 0) + int((lin.weight == 0).sum())
        total[block] = total.get(block, 0) + lin.weight.numel()
    return {
        "overall": rep.overall,
        "per_layer": dict(rep.per_layer),  # per Linear module
        "per_encoder_layer": {b: zeros[b] / total[b] for b in total},  # per transformer block
        "zeros": rep.zeros,
        "total": rep.total,
    }


def measure_stage(out: Outcome, ctx: PipelineContext) -> dict[str, Any]:
    from worker.pipelines.package import load_hf_dir

    ctx.reporter.stage("measure")
    model, qmodel, dense = out.quantized.model, out.quantized.qmodel, out.dense.frozen
    tok, max_len = out.loaded.tokenizer, out.loaded.spec.dataset.max_length
    out_dir = ctx.scratch / "out"
    model_dir = save_hf_dir(model, tok, out_dir / "model")
    dense_dir = save_hf_dir(dense, tok, ctx.scratch / "dense")
    saved = load_hf_dir(model_dir, out.loaded.task.auto_class)
    config = model_config(saved)  # read with the family's keys (DistilBERT: n_layers)
    ctx.reporter.step(0.1)
    dense_targets_sparsity = _sparsity(dense)
    m: dict[str, Any] = {
        "dense": {
            "parameters": measure.count_parameters(dense),
            "encoder_sparsity": dense_targets_sparsity["overall"],
            "file_size": measure.file_sizes_mb(weights_file(dense_dir)),
            "latency_cpu_ms": _latency(ctx, dense, tok, max_len),
        },
        "compressed": {
            "parameters": measure.count_parameters(saved),
            "num_hidden_layers": config.layers,
            "kept_layers": out.compressed.kept_layers,
            "sparsity": _sparsity(saved),
            "file_size": measure.file_sizes_mb(weights_file(model_dir)),
        },
    }
    ctx.reporter.step(0.4)
    m["compressed"]["latency_cpu_ms"] = _latency(ctx, saved, tok, max_len)
    ctx.reporter.step(0.7)
    if qmodel is not None:
        int8_dir = save_int8_dir(
            qmodel,
            model,
            tok,
            out_dir / "model-int8",
            method=out.loaded.spec.quantization.method,
        )
        m["int8"] = {
            "file_size": measure.file_sizes_mb(int8_dir / "model.int8.safetensors"),
            "latency_cpu_ms": _latency(ctx, qmodel, tok, max_len),
        }
    return m


def _applied(out: Outcome) -> list[AppliedStep]:
    """Pruning steps, with the primary dev metric measured right after each where recorded."""
    rows: list[AppliedStep] = []
    name = out.loaded.task.facts.primary_metric
    metric = out.compressed.prune_metric
    for step, sparsity in out.compressed.applied:
        if (step, sparsity) in metric:
            named = PrimaryMetric(name=name, value=metric[(step, sparsity)])
            rows.append(AppliedStep(step=step, sparsity=sparsity, primary_metric=named))
        else:
            rows.append(AppliedStep(step=step, sparsity=sparsity))
    return rows


def build_report(
    out: Outcome, m: dict[str, Any], onnx: OnnxExport, ctx: PipelineContext,
    artifacts: dict[str, ArtifactRef],
) -> Report:  # fmt: skip
    """The report of the run (`artifacts`: those stored so far, by kind)."""
    loaded, spec, evaluated = out.loaded, out.loaded.spec, out.evaluated
    data, dense_eval, int8_eval = loaded.data, out.dense.metrics, evaluated.int8
    structured = out.compressed.structured
    int8 = None
    if int8_eval is not None:
        int8 = Int8Block.model_validate({**int8_eval.as_dict(), **m["int8"]})
    section = None
    if structured:
        section = StructuredSection.model_validate(report_section(structured, onnx.section))
    resumed = out.resumed_from
    return Report(
        schema_version=SCHEMA_VERSION,
        job_id=ctx.job_id,
        task=spec.task,
        spec=spec.model_dump(mode="json"),
        model=ModelInfo(
            source=loaded.loaded.source,
            had_trained_head=loaded.loaded.has_trained_head,
            finetuned_dense=out.dense.finetuned,
        ),
        dataset=DatasetInfo(
            name=data.name,
            label_names=list(data.label_names),
            train_examples=len(data.train),
            train_items=len(loaded.train_items),
            dev_examples=len(data.dev),
            dev_items=len(loaded.evalset.items),
        ),
        max_length=spec.dataset.max_length,
        device=str(ctx.device),
        cpu=CpuInfo.model_validate(host.cpu_info(torch.get_num_threads())),
        dense=DenseBlock.model_validate({**dense_eval.as_dict(), **m["dense"]}),
        compressed=CompressedBlock.model_validate(
            {**evaluated.compressed.as_dict(), **m["compressed"]}
        ),
        int8=int8,
        pruning=Pruning(
            method=spec.pruning.method,
            target_sparsity=None if structured else spec.pruning.sparsity,
            structure=spec.pruning.structure,
            scope=spec.pruning.scope,
            schedule=spec.pruning.schedule.kind,
            applied=_applied(out),
        ),
        onnx=OnnxSection.model_validate(onnx.section),
        structured=section,
        teacher_cache=TeacherCache.model_validate(out.dense.teacher.stats.as_dict()),
        training_steps=out.steps,
        resumed_from=None if resumed is None else ResumedFrom.model_validate(resumed),
        stage_seconds=dict(ctx.reporter.stage_seconds),
        total_seconds=round(time.monotonic() - out.wall_start, 3),
        versions=Versions.model_validate(_versions()),
        artifacts=artifacts,
    )


def package_outputs(
    out: Outcome, m: dict[str, Any], onnx: OnnxExport, ctx: PipelineContext
) -> dict[str, Any]:
    """The `package` stage: the archives and ONNX files as artifacts, report.json and its
    report files; returns the summary kept on the job."""
    ctx.reporter.stage("package")
    out_dir = ctx.scratch / "out"
    archives: dict[str, ArtifactRef] = {}

    def add(kind: str, path: Path, name: str, media: str) -> ArtifactRef:
        sha = ctx.add_artifact(kind, path, name, media)
        archives[kind] = ArtifactRef(filename=name, sha256=sha)
        return archives[kind]

    add("model", make_tar_gz(out_dir / "model", ctx.scratch / MODEL_ARCHIVE), MODEL_ARCHIVE, GZIP)
    if out.quantized.qmodel is not None:
        path = make_tar_gz(out_dir / "model-int8", ctx.scratch / INT8_ARCHIVE)
        add("model_int8", path, INT8_ARCHIVE, GZIP)
    add("model_onnx", onnx.fp32, ONNX_FP32, ONNX)
    add("model_int8_onnx", onnx.int8, ONNX_INT8, ONNX)
    ctx.reporter.step(0.8)
    ctx.reporter.end()
    report = build_report(out, m, onnx, ctx, archives)
    # report.md and the plots are drawn from the report before they are in its artifacts
    for kind, path, media in write_report_files(report, ctx.scratch / "report"):
        report.artifacts[kind] = add(kind, path, path.name, media)
    report_path = ctx.scratch / REPORT
    text = json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
    report_path.write_text(text, encoding="utf-8")
    ctx.add_artifact("report", report_path, REPORT, JSON)
    return summary(report)


def summary(report: Report) -> dict[str, Any]:
    """The few numbers kept on the job row (the report holds the rest): the task's primary
    metric of each model as {name, value}, every scalar metric of the compressed model by
    name (`accuracy`, `f1`, ...) and the dense, int8 and ONNX ones prefixed."""
    c, d = report.compressed, report.dense
    primary = c.primary()
    name = primary.name
    out: dict[str, Any] = {
        "task": report.task,
        "primary_metric": primary.model_dump(mode="json"),
        "dense_primary_metric": d.primary().model_dump(mode="json"),
        **c.scalars(),
        f"dense_{name}": d.primary().value,
        "sparsity": c.sparsity.overall,
        "parameters": c.parameters,
        "model_size_mb": c.file_size.raw_mb,
        "model_gzip_mb": c.file_size.gzip_mb,
        "latency_b1_ms": c.latency_cpu_ms.batch_1_ms,
        "latency_b32_ms": c.latency_cpu_ms.batch_32_ms,
        "dense_latency_b1_ms": d.latency_cpu_ms.batch_1_ms,
        "stage_seconds": dict(report.stage_seconds),
        "total_seconds": report.total_seconds,
    }
    if report.int8 is not None:
        i8 = report.int8
        out["int8_primary_metric"] = i8.primary().model_dump(mode="json")
        out[f"int8_{name}"] = i8.primary().value
        out["int8_size_mb"] = i8.file_size.raw_mb
        out["int8_latency_b1_ms"] = i8.latency_cpu_ms.batch_1_ms
    if report.onnx is not None:
        fp32, int8 = report.onnx.fp32, report.onnx.int8
        out["onnx_primary_metric"] = fp32.primary().model_dump(mode="json")
        out[f"onnx_{name}"] = fp32.primary().value
        out["onnx_agreement"] = fp32.parity.agreement if fp32.parity is not None else None
        out["onnx_int8_primary_metric"] = int8.primary().model_dump(mode="json")
        out[f"onnx_int8_{name}"] = int8.primary().value
        out["onnx_int8_latency_b1_ms"] = int8.latency_cpu_ms.batch_1_ms
        speedup = int8.speedup_vs_dense
        out["onnx_int8_speedup_b1"] = speedup.batch_1 if speedup is not None else None
    return out


def load_report(path: Path) -> Report:
    return Report.model_validate(json.loads(path.read_text(encoding="utf-8")))
