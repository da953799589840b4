"""What the `structured` stage decides with, apart from running it: the job's options, the
latency model of one measured table (``dense = L * dense_layer + rest``; the never-pruned
part ``(L + 1) * rest``: the embeddings and the task head taken as one more `rest`), the
kept counts read back from the masks, the allocation of each step, and the report section.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from app.schemas.job_spec import JobSpec, StructuredSpec
from worker.compression.allocation import InfeasibleBudget, LayerOption, allocate, speedup_budget
from worker.pipelines.architecture import architecture_of, raw_config
from worker.pipelines.errors import ModelInvalid, PipelineError
from worker.pipelines.latency_table import LatencyKey, LatencyTable, ModelOptions, layer_options
from worker.pipelines.structured_calibrate import LayerStructure, StructuredCalibration

ACTIVATION_KEYS = ("hidden_act", "activation", "hidden_activation")
FIXED_PART = "embeddings and task head taken as one layer's `rest` (LayerNorm and add)"


def options_of(spec: JobSpec) -> StructuredSpec:
    return spec.pruning.structured or StructuredSpec()


@dataclass(frozen=True)
class LatencyModel:
    """The model's predicted latency from one table: `layers` layers plus the fixed part."""

    table: LatencyTable
    layers: int

    @property
    def fixed(self) -> float:
        return (self.layers + 1) * self.table.rest

    @property
    def dense(self) -> float:
        return self.layers * self.table.dense_layer + self.table.rest

    def latency(self, heads: Sequence[int], neurons: Sequence[int]) -> float:
        t = self.table
        blocks = (
            t.latency("attention", h) + t.latency("ffn", n)
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
    )  # fmt: skip


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
        f"{key.runtime} fp32 at batch {key.batch} x {key.seq_len} tokens, {key.threads} "
        "threads); lower pruning.structured.target_speedup",
        code="speedup_unreachable",
    )


def _within(
    options: tuple[tuple[LayerOption, ...], ...], now: Sequence[int]
) -> tuple[tuple[LayerOption, ...], ...]:
    """Each layer's options keeping at most what it keeps `now`."""
    return tuple(tuple(o for o in os if o.kept <= n) for os, n in zip(options, now, strict=True))


def choose(
    cal: StructuredCalibration, lm: LatencyModel, target: float, now: tuple[list[int], list[int]]
) -> tuple[tuple[int, ...], tuple[int, ...], float]:
    """The kept heads and neurons per layer (each at most what it keeps `now`) of least
    normalised loss whose predicted latency fits ``dense / target``, and that loss."""
    levels = cal.levels()
    full = layer_options(
        lm.table,
        [lv.heads.relative().tolist() for lv in levels],
        [lv.neurons.relative().tolist() for lv in levels],
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
    """The report's `structured` section: the record, and the measured speedup (the export's
    fp32 ONNX against the dense one, at the table's batch) over the predicted one."""
    batch = record["latency_table"]["key"]["batch"]
    measured = ((onnx or {}).get("fp32") or {}).get("speedup_vs_dense", {}).get(f"batch_{batch}")
    predicted = record["final"]["predicted_speedup"]
    return {
        **record,
        "measured_speedup": measured,
        "measured_over_predicted": measured / predicted if measured and predicted else None,
    }
