"""The `export` stage: ONNX fp32 and int8 files, parity with PyTorch, and measurements.

Everything in the report's `onnx` section is computed by ONNX Runtime from the exported files:
dev-split accuracy, macro-F1 and per-class scores, CPU latency (batch 1) and throughput
(batch 32) at the job's sequence length, and speedups over the dense model exported the same
way. The compressed fp32 graph is exported from the saved `model.safetensors` (what the user
downloads), after the exact removal of the feed-forward neurons pruning emptied
(`worker.pipelines.compaction`; the dense model goes through the same step, which finds
nothing to remove); the int8 graph is quantized from that fp32 graph. A fp32 export whose
labels agree with the (uncompacted) PyTorch model on under 99.5% of the dev split fails the
job with `export_parity_failed`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from worker.pipelines import export as ex
from worker.pipelines.compaction import compact_feed_forward
from worker.pipelines.errors import ExportFailed, PipelineError
from worker.pipelines.evaluate import EvalResult, classification_metrics
from worker.pipelines.measure import file_sizes_mb

if TYPE_CHECKING:
    from worker.pipelines.context import PipelineContext
    from worker.pipelines.state import RunState

log = logging.getLogger(__name__)

ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model-int8.onnx"
DENSE_ONNX = "dense.onnx"
MIN_AGREEMENT = 0.995
LATENCY_ROUNDS = 5


@dataclass
class OnnxExport:
    fp32: Path
    int8: Path
    section: dict[str, Any] = field(default_factory=dict)  # the report's `onnx` section


@dataclass(frozen=True)
class EvalSetup:
    tokenizer: Any
    examples: list[Any]
    label_names: list[str]
    batch_size: int
    max_length: int
    latency_iters: tuple[int, int]


def _cpu(model: nn.Module) -> nn.Module:
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    return model.eval() if on_cpu else copy.deepcopy(model).to("cpu").eval()


def _export_all(
    compressed: nn.Module,
    dense: nn.Module,
    tokenizer: Any,
    folder: Path,
    max_length: int,
    per_channel: bool = False,
) -> tuple[Path, Path, Path, dict[str, Any]]:
    try:
        small, compaction = compact_feed_forward(compressed)
        fp32 = ex.export_onnx(small, tokenizer, folder / ONNX_FP32, max_length=max_length)
        int8 = ex.quantize_onnx_int8(fp32, folder / ONNX_INT8, per_channel=per_channel)
        dense_small, _ = compact_feed_forward(dense)
        dense_path = ex.export_onnx(
            dense_small, tokenizer, folder / "dense" / DENSE_ONNX, max_length=max_length
        )
    except PipelineError:
        raise
    except Exception as e:
        log.exception("ONNX export failed")
        raise ExportFailed(f"ONNX export failed: {type(e).__name__}: {e}"[:2000]) from e
    return fp32, int8, dense_path, compaction


def _scored(session: Any, setup: EvalSetup, batch_size: int) -> tuple[np.ndarray, EvalResult]:
    """The dev split's logits from `session` in batches of `batch_size`, and their metrics."""
    logits = ex.onnx_logits(
        session,
        setup.tokenizer,
        setup.examples,
        batch_size=batch_size,
        max_length=setup.max_length,
    )
    preds = [int(i) for i in logits.argmax(axis=-1)] if len(logits) else []
    ev = classification_metrics(preds, [e.label for e in setup.examples], setup.label_names)
    return logits, ev


def measure_onnx(
    path: Path, setup: EvalSetup, reference: np.ndarray | None, reference_name: str
) -> tuple[dict[str, Any], Any]:
    """Accuracy, parity with `reference` logits and file size of one ONNX file, and its
    session (latency is measured for all the files together: :func:`measure_latencies`)."""
    session = ex.open_session(path)
    logits, ev = _scored(session, setup, setup.batch_size)
    out: dict[str, Any] = {
        "file": path.name,
        "accuracy": ev.accuracy,
        "macro_f1": ev.macro_f1,
        "per_class": ev.per_class,
        "eval_examples": ev.n,
        "file_size": file_sizes_mb(path),
    }
    if reference is not None:
        out["parity"] = ex.parity(logits, reference, reference_name).as_dict()
    return out, session


def batch_1_metrics(session: Any, setup: EvalSetup) -> dict[str, Any]:
    """Accuracy and macro-F1 with every dev example run alone (no padding), as a batch-1
    server runs it. Dynamic int8 quantizes activations with one scale per tensor over the whole
    (padded) batch, so its predictions depend on the batching; fp32 ones do not."""
    _, ev = _scored(session, setup, 1)
    return {"accuracy": ev.accuracy, "macro_f1": ev.macro_f1, "eval_examples": ev.n}


def measure_latencies(measured: dict[str, tuple[dict[str, Any], Any]], setup: EvalSetup) -> None:
    """Batch-1 and batch-32 latency of every measured file, in interleaved rounds (one
    machine hiccup does not bias a speedup), written into each file's `latency_cpu_ms`."""
    b1, b32 = setup.latency_iters
    lat = ex.interleaved_latencies(
        {name: session for name, (_, session) in measured.items()},
        setup.tokenizer,
        setup.max_length,
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


def run_export(
    compressed: nn.Module,
    dense: nn.Module,
    qmodel: nn.Module | None,
    setup: EvalSetup,
    folder: Path,
    *,
    min_agreement: float = MIN_AGREEMENT,
    progress: Any = None,
    qat_model: nn.Module | None = None,
) -> OnnxExport:
    """Export, check parity (fp32 must agree >= min_agreement) and measure. CPU only. With a
    QAT (fake-quant) model, the int8 graph uses per-channel weights (the learned scales) and
    its parity with the fake-quant model is reported too."""
    compressed, dense = _cpu(compressed), _cpu(dense)
    step = progress or (lambda _f: None)
    fp32, int8, dense_path, compaction = _export_all(
        compressed, dense, setup.tokenizer, folder, setup.max_length, qat_model is not None
    )
    step(0.2)

    def logits_of(model: nn.Module) -> np.ndarray:
        return ex.torch_logits(
            model,
            setup.tokenizer,
            setup.examples,
            batch_size=setup.batch_size,
            max_length=setup.max_length,
        )

    ref_fp32 = logits_of(compressed)
    fp32_m, fp32_s = measure_onnx(fp32, setup, ref_fp32, "pytorch_fp32")
    par = ex.Parity(**fp32_m["parity"])
    ex.require_parity(par, "fp32", min_agreement)
    step(0.4)
    if qmodel is not None:
        int8_m, int8_s = measure_onnx(int8, setup, logits_of(qmodel), "pytorch_int8")
    else:
        int8_m, int8_s = measure_onnx(int8, setup, ref_fp32, "pytorch_fp32")
    if qat_model is not None:
        qat_logits = logits_of(_cpu(qat_model))
        int8_logits = ex.onnx_logits(
            int8_s,
            setup.tokenizer,
            setup.examples,
            batch_size=setup.batch_size,
            max_length=setup.max_length,
        )
        int8_m["parity_vs_qat"] = ex.parity(int8_logits, qat_logits, "pytorch_qat").as_dict()
    int8_m["eval_batch_size"] = setup.batch_size
    int8_m["batch_1"] = batch_1_metrics(int8_s, setup)
    step(0.6)
    dense_m, dense_s = measure_onnx(dense_path, setup, logits_of(dense), "pytorch_fp32")
    ex.require_parity(ex.Parity(**dense_m["parity"]), "dense fp32", min_agreement)
    dense_m.pop("file")
    step(0.7)
    measure_latencies(
        {"fp32": (fp32_m, fp32_s), "int8": (int8_m, int8_s), "dense": (dense_m, dense_s)}, setup
    )
    fp32_m["speedup_vs_dense"] = _speedup(dense_m, fp32_m)
    int8_m["speedup_vs_dense"] = _speedup(dense_m, int8_m)
    int8_m["speedup_vs_fp32"] = _speedup(fp32_m, int8_m)
    section = {
        "runtime": _ort_version(),
        "opset": ex.OPSET,
        "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
        "int8_method": (
            "onnxruntime quantize_dynamic (QInt8 per-channel weights at the QAT scales, "
            "MatMul/Gemm)"
            if qat_model is not None
            else "onnxruntime quantize_dynamic (QInt8 weights, MatMul/Gemm)"
        ),
        "providers": ["CPUExecutionProvider"],
        "max_length": setup.max_length,
        "min_fp32_agreement": min_agreement,
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


def export_stage(state: RunState, ctx: PipelineContext) -> OnnxExport:
    """Runs after `measure` (which saved `<scratch>/out/model`)."""
    from transformers import AutoModelForSequenceClassification

    assert state.data is not None and state.loaded is not None and state.dense is not None
    ctx.reporter.stage("export")
    saved = AutoModelForSequenceClassification.from_pretrained(
        str(ctx.scratch / "out" / "model")
    ).eval()
    setup = EvalSetup(
        tokenizer=state.loaded.tokenizer,
        examples=list(state.data.dev),
        label_names=list(state.data.label_names),
        batch_size=state.spec.training.eval_batch_size,
        max_length=state.spec.dataset.max_length,
        latency_iters=ctx.latency_iters,
    )
    return run_export(
        saved,
        state.dense,
        state.qmodel,
        setup,
        ctx.scratch / "onnx",
        progress=ctx.reporter.step,
        qat_model=state.qat_model,
    )
