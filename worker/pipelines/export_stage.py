"""The `export` stage: ONNX fp32 and int8 files, parity with PyTorch, and measurements.

Everything in the report's `onnx` section is computed by ONNX Runtime from the exported files:
the task's dev-split metrics (`worker.pipelines.tasks`), CPU latency (batch 1) and throughput
(batch 32) at the job's sequence length, and speedups over the dense model exported the same
way. The compressed fp32 graph is exported from the saved `model.safetensors` (what the user
downloads), after the exact removal of the attention heads and feed-forward neurons pruning
emptied (`worker.pipelines.compaction`: the graph holds only the kept heads' rows and columns,
layers may differ in head count; the saved PyTorch model keeps its shapes; the dense model goes
through the same step, which finds nothing to remove); the int8 graph is quantized from that
fp32 graph. A fp32 export whose
predictions agree with the (uncompacted) PyTorch model's under the task's gate (labels on
99.5% of the examples or tokens, the best answer span on 99.5% of the questions, a 0.999
correlation of the scores) fails the job with `export_parity_failed`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from worker.pipelines import export as ex
from worker.pipelines.compaction import compact_structures
from worker.pipelines.errors import ExportFailed, ExportParityFailed, PipelineError
from worker.pipelines.host import host_int8_reduced_range
from worker.pipelines.inference import EvalSet, onnx_outputs, torch_outputs
from worker.pipelines.measure import file_sizes_mb
from worker.pipelines.tasks.base import Agreement, ItemOutputs

if TYPE_CHECKING:
    from worker.pipelines.context import PipelineContext
    from worker.pipelines.stages.quantize import Quantized

log = logging.getLogger(__name__)

ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model-int8.onnx"
DENSE_ONNX = "dense.onnx"
LATENCY_ROUNDS = 5


@dataclass
class OnnxExport:
    fp32: Path
    int8: Path
    section: dict[str, Any] = field(default_factory=dict)  # the report's `onnx` section


def _cpu(model: nn.Module) -> nn.Module:
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    return model.eval() if on_cpu else copy.deepcopy(model).to("cpu").eval()


def _export_all(
    compressed: nn.Module,
    dense: nn.Module,
    evalset: EvalSet,
    folder: Path,
    per_channel: bool = False,
    reduce_range: bool = False,
) -> tuple[Path, Path, Path, dict[str, Any]]:
    tokenizer, max_length = evalset.tokenizer, evalset.spec.max_length
    outputs = evalset.task.outputs
    try:
        small, compaction = compact_structures(compressed)
        fp32 = ex.export_onnx(
            small, tokenizer, folder / ONNX_FP32, max_length=max_length, outputs=outputs
        )
        int8 = ex.quantize_onnx_int8(
            fp32, folder / ONNX_INT8, per_channel=per_channel, reduce_range=reduce_range
        )
        dense_small, _ = compact_structures(dense)
        dense_path = ex.export_onnx(
            dense_small, tokenizer, folder / "dense" / DENSE_ONNX, max_length=max_length,
            outputs=outputs,
        )  # fmt: skip
    except PipelineError:
        raise
    except Exception as e:
        log.exception("ONNX export failed")
        raise ExportFailed(f"ONNX export failed: {type(e).__name__}: {e}"[:2000]) from e
    return fp32, int8, dense_path, compaction


def measure_onnx(
    path: Path, evalset: EvalSet, reference: list[ItemOutputs] | None, reference_name: str
) -> tuple[dict[str, Any], Any, list[ItemOutputs]]:
    """The task's metrics, agreement with `reference` outputs and file size of one ONNX file,
    its session and its outputs (latency is measured for all the files together:
    :func:`measure_latencies`)."""
    session = ex.open_session(path)
    outputs = onnx_outputs(evalset, session)
    out: dict[str, Any] = {
        "file": path.name,
        **evalset.score(outputs).as_dict(),
        "file_size": file_sizes_mb(path),
    }
    if reference is not None:
        out["parity"] = agreement(evalset, outputs, reference, reference_name).as_dict()
    return out, session, outputs


def agreement(
    evalset: EvalSet, outputs: list[ItemOutputs], reference: list[ItemOutputs], name: str
) -> Agreement:
    """The task's agreement of `outputs` with `reference`; outputs that cannot be compared
    (another shape: the graph lost an axis) fail the job as a parity failure."""
    try:
        return evalset.task.agree(evalset.items, outputs, reference, name, evalset.spec)
    except ValueError as e:
        raise ExportParityFailed(f"ONNX outputs cannot be compared with {name}: {e}") from e


def batch_1_metrics(session: Any, evalset: EvalSet) -> dict[str, Any]:
    """The task's metrics with every dev item run alone (no padding), as a batch-1 server runs
    it. Dynamic int8 quantizes activations with one scale per tensor over the whole (padded)
    batch, so its predictions depend on the batching; fp32 ones do not."""
    return evalset.score(onnx_outputs(evalset, session, batch_size=1)).as_dict()


def measure_latencies(
    measured: dict[str, tuple[dict[str, Any], Any]], evalset: EvalSet, iters: tuple[int, int]
) -> None:
    """Batch-1 and batch-32 latency of every measured file, in interleaved rounds (one
    machine hiccup does not bias a speedup), written into each file's `latency_cpu_ms`."""
    b1, b32 = iters
    lat = ex.interleaved_latencies(
        {name: session for name, (_, session) in measured.items()},
        evalset.tokenizer,
        evalset.spec.max_length,
        iters_b1=b1,
        iters_b32=b32,
        rounds=LATENCY_ROUNDS,
    )
    for name, (metrics, _) in measured.items():
        metrics["latency_cpu_ms"] = lat[name]


def _speedup(base: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    b, o = base["latency_cpu_ms"], other["latency_cpu_ms"]
    return {
        f"batch_{n}": round(b[f"batch_{n}_ms"] / o[f"batch_{n}_ms"], 3)
        if o[f"batch_{n}_ms"]
        else 0.0
        for n in (1, 32)
    }


def _require(measured: dict[str, Any], variant: str, min_agreement: float) -> None:
    par = measured["parity"]
    ex.require_parity(
        Agreement(par["reference"], par["agreement"], par["max_abs_diff"], par["n"], par["unit"]),
        variant,
        min_agreement,
    )


def run_export(
    compressed: nn.Module,
    dense: nn.Module,
    qmodel: nn.Module | None,
    evalset: EvalSet,
    folder: Path,
    *,
    latency_iters: tuple[int, int] = (30, 2),
    min_agreement: float | None = None,
    progress: Any = None,
    qat_model: nn.Module | None = None,
) -> OnnxExport:
    """Export, check parity (fp32 must agree >= min_agreement, by default the task's gate)
    and measure. CPU only. With a QAT (fake-quant) model, the int8 graph uses per-channel
    weights (the learned scales) and its parity with the fake-quant model is reported too."""
    gate = evalset.task.min_agreement if min_agreement is None else min_agreement
    compressed, dense = _cpu(compressed), _cpu(dense)
    step = progress or (lambda _f: None)
    cpu = torch.device("cpu")
    reduced = host_int8_reduced_range()  # 7-bit weights where 8 would saturate
    fp32, int8, dense_path, compaction = _export_all(
        compressed, dense, evalset, folder, qat_model is not None, reduced
    )
    step(0.2)
    ref_fp32 = torch_outputs(evalset, compressed, cpu)
    fp32_m, fp32_s, _ = measure_onnx(fp32, evalset, ref_fp32, "pytorch_fp32")
    _require(fp32_m, "fp32", gate)
    step(0.4)
    if qmodel is not None:
        int8_ref, int8_name = torch_outputs(evalset, qmodel, cpu), "pytorch_int8"
    else:
        int8_ref, int8_name = ref_fp32, "pytorch_fp32"
    int8_m, int8_s, int8_out = measure_onnx(int8, evalset, int8_ref, int8_name)
    if qat_model is not None:
        qat_out = torch_outputs(evalset, _cpu(qat_model), cpu)
        int8_m["parity_vs_qat"] = agreement(evalset, int8_out, qat_out, "pytorch_qat").as_dict()
    int8_m["eval_batch_size"] = evalset.batch_size
    int8_m["batch_1"] = batch_1_metrics(int8_s, evalset)
    step(0.6)
    dense_ref = torch_outputs(evalset, dense, cpu)
    dense_m, dense_s, _ = measure_onnx(dense_path, evalset, dense_ref, "pytorch_fp32")
    _require(dense_m, "dense fp32", gate)
    dense_m.pop("file")
    step(0.7)
    measure_latencies(
        {"fp32": (fp32_m, fp32_s), "int8": (int8_m, int8_s), "dense": (dense_m, dense_s)},
        evalset,
        latency_iters,
    )
    fp32_m["speedup_vs_dense"] = _speedup(dense_m, fp32_m)
    int8_m["speedup_vs_dense"] = _speedup(dense_m, int8_m)
    int8_m["speedup_vs_fp32"] = _speedup(fp32_m, int8_m)
    section = {
        "runtime": _ort_version(),
        "opset": ex.OPSET,
        "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
        "outputs": [
            {"name": o.name, "axes": ["batch", "sequence"] if o.per_token else ["batch"]}
            for o in evalset.task.outputs
        ],
        "int8_method": (
            "onnxruntime quantize_dynamic (QInt8 per-channel weights at the QAT scales, "
            "MatMul/Gemm)"
            if qat_model is not None
            else "onnxruntime quantize_dynamic (QInt8 weights, MatMul/Gemm)"
        ),
        # 7 on an x86 CPU without VNNI or AMX (host.int8_reduced_range), else 8
        "int8_weight_bits": 7 if reduced else 8,
        "providers": ["CPUExecutionProvider"],
        "max_length": evalset.spec.max_length,
        "min_fp32_agreement": gate,
        "latency_method": f"median of timed runs taken in {LATENCY_ROUNDS} rounds that "
        "alternate between the dense, fp32 and int8 files; full-length random rows",
        "compaction": compaction,
        "dense_fp32": dense_m,
        "fp32": fp32_m,
        "int8": int8_m,
    }
    step(0.95)
    return OnnxExport(fp32=fp32, int8=int8, section=section)


def _ort_version() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def export_stage(
    evalset: EvalSet, dense: nn.Module, quantized: Quantized, ctx: PipelineContext
) -> OnnxExport:
    """Runs after `measure` (which saved `<scratch>/out/model`); `dense` is the frozen dense
    model, `quantized` what the quantize or qat stage gave."""
    from worker.pipelines.package import load_hf_dir

    ctx.reporter.stage("export")
    saved = load_hf_dir(ctx.scratch / "out" / "model", evalset.task.auto_class)
    return run_export(
        saved,
        dense,
        quantized.qmodel,
        evalset,
        ctx.scratch / "onnx",
        latency_iters=ctx.latency_iters,
        progress=ctx.reporter.step,
        qat_model=quantized.qat_model,
    )
