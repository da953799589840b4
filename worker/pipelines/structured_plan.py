"""What the `structured` stage decides with, apart from running it: the job's options, the
latency model (a measured table of attention and FFN blocks by kept count, anchored to the
dense model's and the student's whole ONNX graphs timed at the same shapes), the kept counts
read back from the masks, the allocation of each step, and the report section. The latency
model only proposes: each step's allocation is then timed as a whole graph and re-solved until
its measured speedup is the step's target (worker.pipelines.structured_measure).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from app.schemas.job_spec import JobSpec, StructuredSpec
from app.schemas.pruning_spec import LossNorm
from worker.compression.allocation import InfeasibleBudget, LayerOption, allocate, speedup_budget
from worker.compression.structured import StructuredLevels
from worker.pipelines.architecture import architecture_of, raw_config
from worker.pipelines.errors import ModelInvalid, PipelineError
from worker.pipelines.latency_table import LatencyKey, LatencyTable, ModelOptions, layer_options
from worker.pipelines.structured_calibrate import LayerStructure, StructuredCalibration

ACTIVATION_KEYS = ("hidden_act", "activation", "hidden_activation")
FIXED_PART = (
    "fitted: the student's whole ONNX graph timed at the table's shapes with every block at "
    "full width and with every block at one head and one neuron, a line through both (the "
    "blocks' scale and the fixed part); a removed block priced as the one it keeps"
)


def options_of(spec: JobSpec) -> StructuredSpec:
    return spec.pruning.structured or StructuredSpec()


@dataclass(frozen=True)
class LatencyModel:
    """The model's predicted latency from one table: `layers` layers at their kept counts,
    each block priced by the table times `scale`, plus a fixed part.

    Without measurements the fixed part is ``(layers + 1) * rest`` and the scale 1. With them
    (seconds: whole ONNX graphs timed on this host at the table's shapes) the dense model,
    before any layer dropping, is the reference, and two graphs of the student fit a line:
    `measured_student` (every block at full width) and `measured_minimal` (every block down
    to the one head and neuron a removed block keeps in the export) give the scale (their
    difference over the table's) and the fixed part. (A real graph costs more than its
    isolated blocks: reshapes, masks, per-op overhead. On MiniLM-L6 at 128 tokens the graph
    took 33 ms against 19 for its blocks, and keeping half and a quarter of every layer's
    heads and neurons measured 1.96x and 4.19x where unscaled blocks predicted 1.75x and
    2.78x, a fixed excess 1.36x and 1.64x.)"""

    table: LatencyTable
    layers: int
    measured_dense: float | None = None
    measured_student: float | None = None
    measured_minimal: float | None = None

    def _blocks(self, kept_heads: int, kept_neurons: int) -> float:
        t = self.table
        return self.layers * (t.latency("attention", kept_heads) + t.latency("ffn", kept_neurons))

    @property
    def scale(self) -> float:
        """Measured over isolated cost of the blocks (1 without the two measurements)."""
        full, low = self.measured_student, self.measured_minimal
        if full is None or low is None:
            return 1.0
        key = self.table.key
        span = self._blocks(key.heads, key.ffn) - self._blocks(1, 1)
        return (full - low) / span if span > 0 and full > low else 1.0

    @property
    def fixed(self) -> float:
        if self.measured_student is None or self.measured_minimal is None:
            return (self.layers + 1) * self.table.rest
        key = self.table.key
        return max(self.measured_student - self.scale * self._blocks(key.heads, key.ffn), 0.0)

    @property
    def dense(self) -> float:
        if self.measured_dense is not None:
            return self.measured_dense
        return self.layers * self.table.dense_layer + self.table.rest

    def block(self, kind: Literal["attention", "ffn"], kept: int) -> float:
        """A block's latency at `kept`; a removed one (0) still runs in the exported graph as
        one silent head or neuron (the compaction keeps one), so it costs what 1 costs."""
        return self.scale * self.table.latency(kind, max(kept, 1))

    def latency(self, heads: Sequence[int], neurons: Sequence[int]) -> float:
        blocks = (
            self.block("attention", h) + self.block("ffn", n)
            for h, n in zip(heads, neurons, strict=True)
        )
        return self.fixed + math.fsum(blocks)

    def speedup(self, heads: Sequence[int], neurons: Sequence[int]) -> float:
        latency = self.latency(heads, neurons)
        return self.dense / latency if latency > 0 else math.inf

    @property
    def best_speedup(self) -> float:
        return self.speedup([0] * self.layers, [0] * self.layers)


def latency_key(model: nn.Module, spec: JobSpec) -> LatencyKey:
    """The table's key for `model`'s shapes at the spec's batch and length, this host."""
    arch = architecture_of(model)
    config = arch.config(raw_config(model))
    act = next((a for k in ACTIVATION_KEYS if isinstance(a := config.get(k), str)), None)
    if act is None:
        raise ModelInvalid(f"{arch.display} config names no activation ({ACTIVATION_KEYS})")
    return LatencyKey.for_host(
        hidden=config.hidden, heads=config.heads, ffn=config.ffn, gated=arch.ffn.gated,
        activation=act, batch=options_of(spec).latency_batch_size,
        seq_len=spec.dataset.max_length, threads=torch.get_num_threads(),
        precision=options_of(spec).precision,
    )  # fmt: skip


def per_channel(spec: JobSpec) -> bool:
    """Whether the export quantizes the int8 file per channel (a QAT model) or per tensor."""
    return spec.quantization.method == "qat_int8"


def kept_counts(
    layers: Sequence[LayerStructure], masks: dict[str, Tensor] | None
) -> tuple[list[int], list[int], list[list[int]]]:
    """Per layer the kept heads and neurons (module shapes, less what the masks removed) and
    the kept heads' indices."""
    heads, neurons, indices = [], [], []
    for s in layers:
        out = (masks or {}).get(s.output_name)
        alive = (
            torch.ones(s.heads, dtype=torch.bool)
            if out is None
            else out.reshape(out.shape[0], s.heads, s.head_dim).any(dim=2).any(dim=0).cpu()
        )
        fc2 = (masks or {}).get(s.fc2_name)
        heads.append(int(alive.sum()))
        neurons.append(s.neurons if fc2 is None else int(fc2.any(dim=0).sum()))
        indices.append([int(i) for i in alive.nonzero().flatten()])
    return heads, neurons, indices


def unreachable(target: float, lm: LatencyModel) -> PipelineError:
    key = lm.table.key
    return PipelineError(
        f"pruning.structured.target_speedup {target:g} is out of reach: the best reachable "
        f"speedup of this model is {lm.best_speedup:.3g}x (every head and neuron removed; "
        f"{key.runtime} {key.precision} at batch {key.batch} x {key.seq_len} tokens, {key.threads} "
        "threads); lower pruning.structured.target_speedup",
        code="speedup_unreachable",
    )


def _within(
    options: tuple[tuple[LayerOption, ...], ...], now: Sequence[int]
) -> tuple[tuple[LayerOption, ...], ...]:
    """Each layer's options keeping at most what it keeps `now`."""
    return tuple(tuple(o for o in os if o.kept <= n) for os, n in zip(options, now, strict=True))


Kind = Literal["attention", "ffn"]


def _priced(
    options: tuple[tuple[LayerOption, ...], ...], lm: LatencyModel, kind: Kind
) -> tuple[tuple[LayerOption, ...], ...]:
    """Each layer's options priced as the latency model prices them (the table's block
    latency times its scale; kept 0 as kept 1), so the allocation and the prediction agree."""
    return tuple(tuple(replace(o, latency=lm.block(kind, o.kept)) for o in os) for os in options)


def choose(
    cal: StructuredCalibration, lm: LatencyModel, target: float, now: tuple[list[int], list[int]],
    by: LossNorm = StructuredSpec.model_fields["normalize_loss_by"].default,
) -> tuple[tuple[int, ...], tuple[int, ...], float]:  # fmt: skip
    """The kept heads and neurons per layer (each at most what it keeps `now`) of least
    normalised loss whose predicted latency fits ``dense / target``, and that loss."""
    return choose_from(calibration_options(cal, lm, by), lm, target, now)


def normalised(levels: StructuredLevels, stream_energy: float, by: LossNorm) -> list[float]:
    """A module's level losses divided as `by` says (StructuredSpec.normalize_loss_by): by
    its dense output energy (``relative()``) or by its layer's input stream energy."""
    if by == "stream" and stream_energy > 0:
        return (levels.loss / stream_energy).tolist()
    return levels.relative().tolist()


def calibration_options(cal: StructuredCalibration, lm: LatencyModel, by: LossNorm) -> ModelOptions:
    """Every layer's kept counts with their normalised losses (the calibration's levels)."""
    levels = cal.levels()
    streams = cal.stream_energy
    return layer_options(
        lm.table,
        [normalised(lv.heads, e, by) for lv, e in zip(levels, streams, strict=True)],
        [normalised(lv.neurons, e, by) for lv, e in zip(levels, streams, strict=True)],
    )


def choose_from(
    options: ModelOptions, lm: LatencyModel, target: float, now: tuple[Sequence[int], Sequence[int]]
) -> tuple[tuple[int, ...], tuple[int, ...], float]:
    """:func:`choose` on given options (every layer's kept counts and their losses), priced
    by `lm` and offered up to what each layer keeps `now`."""
    full = ModelOptions(
        _priced(options.attention, lm, "attention"), _priced(options.ffn, lm, "ffn")
    )
    opts = ModelOptions(_within(full.attention, now[0]), _within(full.ffn, now[1]))
    try:
        alloc = allocate(
            opts.interleaved(), speedup_budget(lm.dense, target), fixed_latency=lm.fixed
        )
    except InfeasibleBudget:
        raise unreachable(target, lm) from None
    heads, neurons = opts.split(alloc)
    return heads, neurons, alloc.loss


def report_section(record: dict[str, Any], onnx: dict[str, Any] | None) -> dict[str, Any]:
    """The report's `structured` section: the record; the measured speedup (the export's file
    at the table's precision against the dense fp32 one, at the table's batch) over the
    latency model's prediction and over the speedup measured when planning
    (`plan_measured_speedup`, the last step's plan timed as a whole graph); and every planning
    round of every step (`plan_rounds`)."""
    key = record["latency_table"]["key"]
    batch, precision = key["batch"], key.get("precision", "fp32")
    block = (onnx or {}).get(precision) or {}
    measured = block.get("speedup_vs_dense", {}).get(f"batch_{batch}")
    predicted = record["final"]["predicted_speedup"]
    planned = record["final"].get("plan_measured_speedup")
    return {
        **record,
        "precision": precision,
        "measured_speedup": measured,
        "measured_over_predicted": measured / predicted if measured and predicted else None,
        "plan_measured_speedup": planned,
        "measured_over_plan": measured / planned if measured and planned else None,
        "plan_rounds": [
            {"step": row["step"], **{k: r[k] for k in ROUND_KEYS}}
            for row in record["per_step"]
            for r in row.get("plan_rounds", ())
        ],
    }


ROUND_KEYS = ("round", "internal_target_speedup", "predicted_speedup", "measured_speedup", "chosen")


@torch.no_grad()
def cpu_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` on the CPU, made without a second copy where it lives: each parameter
    and buffer is copied straight to the CPU and handed to the deep copy as already copied
    (shared ones stay shared; the copies carry no gradient hooks), so a model on a GPU is
    never duplicated there (`copy.deepcopy(model).to("cpu")` would be, whole, for a moment)."""
    import copy

    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        if id(t) not in memo:
            host = t.detach().to("cpu", copy=True)
            memo[id(t)] = (
                nn.Parameter(host, requires_grad=t.requires_grad)
                if isinstance(t, nn.Parameter)
                else host
            )
    return copy.deepcopy(model, memo)


@dataclass(frozen=True)
class GraphPrecision:
    """How a timed graph is exported: fp32, or int8 as the export quantizes it (per channel
    for a QAT model, else per tensor)."""

    int8: bool = False
    per_channel: bool = False


FP32 = GraphPrecision()


def graph_precision(key: LatencyKey, spec: JobSpec) -> GraphPrecision:
    """The precision the plans of `spec` are timed at (the table's key's)."""
    return GraphPrecision(int8=key.precision == "int8", per_channel=per_channel(spec))


def graph_turn(
    model: nn.Module, tokenizer: Any, key: LatencyKey, outputs: Any, folder: Path, runs: int = 3,
    precision: GraphPrecision = FP32,
) -> Any:  # fmt: skip
    """`model` exported to ``folder/model.onnx`` (a CPU copy when it is elsewhere, see
    :func:`cpu_copy`; its train or eval mode left as it was; int8: then quantized to
    ``folder/model-int8.onnx``) and its ONNX Runtime session's turn of timed runs at the
    table's batch, length (full-length rows) and threads."""
    from worker.pipelines import export as ex
    from worker.pipelines.measure import dummy_inputs

    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    cpu, training = (model if on_cpu else cpu_copy(model)), model.training
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = ex.export_onnx(cpu, tokenizer, folder / "model.onnx", max_length=key.seq_len,
                              outputs=outputs)  # fmt: skip
    finally:
        model.train(training)
    if precision.int8:
        path = ex.quantize_onnx_int8(path, folder / "model-int8.onnx",
                                     per_channel=precision.per_channel)  # fmt: skip
    session = ex.open_session(path, threads=key.threads)
    names = {i.name for i in session.get_inputs()}
    feed = {n: v.numpy() for n, v in dummy_inputs(tokenizer, key.batch, key.seq_len).items()
            if n in names}  # fmt: skip
    return ex.Turn(session, feed, runs, 3)


def turns_seconds(turns: dict[str, Any], rounds: int = 7) -> dict[str, float]:
    """The turns timed in the same alternating rounds, so that drift lands on all of them
    alike; the median of each, in seconds."""
    import statistics

    from worker.pipelines import export as ex

    times = ex.alternating_runs(turns, rounds)
    return {name: statistics.median(ms) / 1000.0 for name, ms in times.items()}


def measured_graphs_seconds(
    models: dict[str, nn.Module], tokenizer: Any, key: LatencyKey, outputs: Any, folder: Path,
    *, rounds: int = 7, runs: int = 3, precisions: dict[str, GraphPrecision] | None = None,
) -> dict[str, float]:  # fmt: skip
    """Whole models exported to ONNX (at `precisions`' entry, fp32 where it has none) and
    timed on this host at the table's batch, length and threads (full-length rows), in the
    same alternating rounds so that drift lands on all of them alike; the median of each, in
    seconds."""
    at = precisions or {}
    turns = {
        name: graph_turn(model, tokenizer, key, outputs, folder / name, runs, at.get(name, FP32))
        for name, model in models.items()
    }
    return turns_seconds(turns, rounds)
