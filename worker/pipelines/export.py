"""ONNX export of a task model (its task's outputs: `logits`, or `start_logits` and
`end_logits`), int8 ONNX by ONNX Runtime, and ORT session, feed and latency helpers.

The fp32 graph comes from torch's TorchScript-based exporter (`dynamo=False`: offline, fast, no
onnxscript needed; still present in torch 2.13, deprecated), opset 17, with dynamic batch and
sequence axes (token-level outputs keep the sequence axis), and attention traced in its eager
form, for every family of the architecture table (DeBERTa's relative attention and ModernBERT's
rotary and sliding-window attention build their position terms and masks from the traced
sequence length, so the graph holds for any batch and length). The int8 graph is
`onnxruntime.quantization.quantize_dynamic` of it (QInt8 weights of MatMul/Gemm, activations
quantized at run time).
"""

from __future__ import annotations

import logging
import statistics
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.jit._trace import TracerWarning

from worker.pipelines.errors import ExportParityFailed
from worker.pipelines.measure import dummy_inputs
from worker.pipelines.tasks.base import Agreement, Output

log = logging.getLogger(__name__)

OPSET = 17
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"
LOGITS = "logits"
CLASSIFIER_OUTPUTS = (Output(LOGITS, per_token=False),)


class _TaskOutputs(nn.Module):
    """Positional inputs in, the task's outputs out (in order): what the exporter traces."""

    def __init__(self, model: nn.Module, names: Sequence[str], outputs: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(names)
        self.outputs = tuple(outputs)

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.names, args, strict=True)))
        return tuple(getattr(out, name) for name in self.outputs)


def input_names(model: nn.Module, tokenizer: Any) -> list[str]:
    """input_ids, attention_mask, and token_type_ids when the tokenizer emits them and the
    model reads them (a type vocabulary and a forward that takes them: not DistilBERT,
    MPNet, ModernBERT, nor a DeBERTa without token types)."""
    from worker.pipelines.architecture import uses_token_type_ids

    names = [INPUT_IDS, ATTENTION_MASK]
    tok_inputs = set(getattr(tokenizer, "model_input_names", None) or [TOKEN_TYPE_IDS])
    if TOKEN_TYPE_IDS in tok_inputs and uses_token_type_ids(model):
        names.append(TOKEN_TYPE_IDS)
    return names


def _example_inputs(tokenizer: Any, names: Sequence[str], max_length: int) -> list[torch.Tensor]:
    """Two rows, the second padded, so the traced graph keeps the attention-mask path."""
    length = max(4, min(max_length, 16))
    inputs = dummy_inputs(tokenizer, 2, length)
    ids = inputs[INPUT_IDS]
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0
    pad = getattr(tokenizer, "pad_token_id", None)
    ids[1, length // 2 :] = pad if pad is not None else 0
    full = {INPUT_IDS: ids, ATTENTION_MASK: mask, TOKEN_TYPE_IDS: torch.zeros_like(ids)}
    return [full[n] for n in names]


@contextmanager
def _eager_attention(model: nn.Module) -> Iterator[None]:
    """Attention traced as its plain MatMul/Softmax ("eager") form while exporting, restored
    afterwards: the SDPA form traces to extra mask operators (Where over the scores) that cost
    the 3-layer int8 compound about 9% of its batch-1 time in ONNX Runtime (bench/latency.py
    numbers in the README); the logits are the same."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    setter = getattr(model, "set_attn_implementation", None)
    if before in (None, "eager") or setter is None:
        yield
        return
    setter("eager")
    try:
        yield
    finally:
        setter(before)


def export_onnx(
    model: nn.Module,
    tokenizer: Any,
    dest: Path,
    *,
    max_length: int,
    opset: int = OPSET,
    outputs: Sequence[Output] = CLASSIFIER_OUTPUTS,
) -> Path:
    """Export `model` (a CPU task model, left unchanged) to `dest` as fp32 ONNX with the
    task's `outputs`; every axis but the last of a token-level output is dynamic."""
    names = input_names(model, tokenizer)
    wrapper = _TaskOutputs(model, names, [o.name for o in outputs]).eval()
    args = tuple(_example_inputs(tokenizer, names, max_length))
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    for o in outputs:
        axes[o.name] = {0: "batch", 1: "sequence"} if o.per_token else {0: "batch"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad(), _eager_attention(model):
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", TracerWarning)
        torch.onnx.export(
            wrapper,
            args,
            str(dest),
            input_names=names,
            output_names=[o.name for o in outputs],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    log.info("exported %s (%d bytes)", dest.name, dest.stat().st_size)
    return dest


def quantize_onnx_int8(
    src: Path, dest: Path, *, per_channel: bool = False, reduce_range: bool | None = None
) -> Path:
    """Dynamic int8 quantization of the MatMul/Gemm weights of an fp32 ONNX model. With
    `per_channel` (QAT: weights already on a symmetric per-channel int8 grid), the scales ONNX
    Runtime derives (max|w|/127 per channel) are the learned ones. `reduce_range` (7-bit
    weights; None: this host's host.int8_reduced_range, a CPU whose int8 kernels would
    saturate at 8 bits) re-grids them at 63 levels a side instead."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from worker.pipelines.host import host_int8_reduced_range

    if reduce_range is None:
        reduce_range = host_int8_reduced_range()

    dest.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        str(src),
        str(dest),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=per_channel,
        reduce_range=reduce_range,
    )
    log.info("quantized %s -> %s (%d bytes)", src.name, dest.name, dest.stat().st_size)
    return dest


def open_session(path: Path, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session (intra-op threads as torch uses unless given)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def feed_of(session: Any, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    ids = inputs[INPUT_IDS]
    feed: dict[str, np.ndarray] = {}
    for arg in session.get_inputs():
        value = inputs.get(arg.name)
        if value is None:
            value = torch.ones_like(ids) if arg.name == ATTENTION_MASK else torch.zeros_like(ids)
        feed[arg.name] = value.detach().cpu().to(torch.int64).numpy()
    return feed


def require_parity(result: Agreement, variant: str, min_agreement: float) -> None:
    """Raise `ExportParityFailed` when the agreement is under `min_agreement`."""
    if result.agreement < min_agreement:
        raise ExportParityFailed(
            f"{variant} ONNX export agrees with {result.reference} on {result.agreement:.2%} "
            f"of {result.n} dev {result.unit} (needs >= {min_agreement:.2%}; max |output "
            f"diff| {result.max_abs_diff:.4g})"
        )


def timed_runs(session: Any, feed: dict[str, np.ndarray], n: int) -> list[float]:
    times: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


@dataclass(frozen=True)
class Turn:
    """One session's share of a round: `runs` timed runs on `feed`, after `warmup` untimed."""

    session: Any
    feed: dict[str, np.ndarray]
    runs: int
    warmup: int


def alternating_runs(turns: Mapping[Any, Turn], rounds: int) -> dict[Any, list[float]]:
    """Every turn's warm-up, then `rounds` rounds that take the turns in order, so a slowdown
    of the machine while measuring (another process, a noisy neighbour) lands on all of them
    alike instead of on whichever came last. Each turn's timings in ms, round after round."""
    for turn in turns.values():
        timed_runs(turn.session, turn.feed, turn.warmup)
    samples: dict[Any, list[float]] = {key: [] for key in turns}
    for _ in range(max(1, rounds)):
        for key, turn in turns.items():
            samples[key] += timed_runs(turn.session, turn.feed, turn.runs)
    return samples


def interleaved_latencies(
    sessions: Mapping[str, Any],
    tokenizer: Any,
    max_length: int,
    *,
    iters_b1: int = 5,
    iters_b32: int = 2,
    rounds: int = 5,
) -> dict[str, dict[str, float]]:
    """Batch-1 latency and batch-32 latency and throughput of sessions that are compared with
    each other, on full-length random rows: the timed runs are split into `rounds` that take
    turns between the sessions (:func:`alternating_runs`). Medians over all of a session's
    runs, in milliseconds."""
    rounds = max(1, rounds)
    per = {1: max(1, -(-iters_b1 // rounds)), 32: max(1, -(-iters_b32 // rounds))}
    warmup = {1: 2, 32: 1}
    rows = {n: dummy_inputs(tokenizer, n, max_length) for n in (1, 32)}
    turns = {
        (name, n): Turn(s, feed_of(s, rows[n]), per[n], warmup[n])
        for name, s in sessions.items()
        for n in (1, 32)
    }
    runs = alternating_runs(turns, rounds)
    samples = {name: {n: runs[(name, n)] for n in (1, 32)} for name in sessions}
    out: dict[str, dict[str, float]] = {}
    for name, by_batch in samples.items():
        b1 = round(statistics.median(by_batch[1]), 3)
        b32 = round(statistics.median(by_batch[32]), 3)
        out[name] = {
            "batch_1_ms": b1,
            "batch_32_ms": b32,
            "throughput_b32_per_s": round(32 * 1000.0 / b32, 2) if b32 > 0 else 0.0,
            "runs_b1": len(by_batch[1]),
            "runs_b32": len(by_batch[32]),
        }
    return out
