"""Applying a structured-pruning choice (ZipLM) to a model, in place, as masks.

For each layer's kept head and neuron counts, the output projections get the structured OBS
weights of that level (the removed columns exactly zero, the kept ones and the bias refitted)
and the input side of every removed structure is zeroed too, so the structure is wholly gone:
head i's rows of query, key and value (of each third of a fused qkv; of DeBERTa's separate
position projections when present) and their biases; neuron j's row of fc1 (and its gate,
row ffn + j, when gated) and its bias. What remains is exactly the model with only the output
columns zeroed, since a zero column discards whatever its structure computes.

The returned masks (qualified name -> bool, weight-shaped, True = kept, the keys of
`prunable_targets`) are what `hold_masks` keeps at zero while recovering. Biases are not masked
and need not be: a removed structure's biases feed only zero output columns, so their gradient
is exactly zero and no optimizer step moves them off zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from worker.pipelines.structured_calibrate import LayerStructure, StructuredCalibration


def _counts(name: str, kept: Sequence[int], tops: Sequence[int]) -> list[int]:
    if len(kept) != len(tops):
        raise ValueError(f"{name} must give one count per layer ({len(tops)}), got {len(kept)}")
    out = []
    for i, (k, top) in enumerate(zip(kept, tops, strict=True)):
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= top:
            raise ValueError(f"{name}[{i}] must be an integer in [0, {top}], got {k!r}")
        out.append(k)
    return out


def _keep_vector(count: int, kept: Tensor, device: torch.device) -> Tensor:
    keep = torch.zeros(count, dtype=torch.bool, device=device)
    keep[kept.to(device)] = True
    return keep


@torch.no_grad()
def _set_output(linear: nn.Linear, weight: Tensor, bias: Tensor | None) -> None:
    linear.weight.copy_(weight.to(linear.weight.dtype))
    if linear.bias is not None and bias is not None:
        linear.bias.copy_(bias.to(linear.bias.dtype))


@torch.no_grad()
def _zero_rows(linear: nn.Linear, rows: Tensor) -> Tensor:
    """Zero the rows where ``rows`` is False (and their bias); the weight-shaped mask."""
    mask = rows[:, None].expand_as(linear.weight).contiguous()
    linear.weight.masked_fill_(~mask, 0.0)
    if linear.bias is not None:
        linear.bias.masked_fill_(~rows, 0.0)
    return mask


def _apply_layer(
    s: LayerStructure, calibration: StructuredCalibration, heads: int, neurons: int
) -> dict[str, Tensor]:
    masks: dict[str, Tensor] = {}
    obs = calibration.heads[s.index]
    new = obs.weight_at(heads, compact=False)
    _set_output(s.output, new.weight, new.bias)
    dev = s.output.weight.device
    keep_heads = _keep_vector(s.heads, new.groups, dev)
    columns = keep_heads.repeat_interleave(s.head_dim)
    masks[s.output_name] = columns[None, :].expand_as(s.output.weight).contiguous()
    for inp in s.head_inputs:
        masks[inp.name] = _zero_rows(
            inp.linear, columns.repeat(inp.parts).to(inp.linear.weight.device)
        )
    new = calibration.neurons[s.index].weight_at(neurons, compact=False)
    _set_output(s.fc2, new.weight, new.bias)
    keep = _keep_vector(s.neurons, new.groups, s.fc2.weight.device)
    masks[s.fc2_name] = keep[None, :].expand_as(s.fc2.weight).contiguous()
    rows = keep.repeat(2 if s.gated else 1).to(s.fc1.weight.device)
    masks[s.fc1_name] = _zero_rows(s.fc1, rows)
    return masks


def apply_structure(
    model: nn.Module,
    calibration: StructuredCalibration,
    kept_heads: Sequence[int],
    kept_neurons: Sequence[int],
) -> dict[str, Tensor]:
    """Keep ``kept_heads[i]`` heads and ``kept_neurons[i]`` neurons of layer i (0 removes the
    module: its output is then its refitted bias alone), in place; returns the masks of every
    touched Linear. ``calibration`` must be of this model, with levels, not yet freed."""
    if calibration.model is not model:
        raise ValueError("calibration was made on another model")
    layers = calibration.layers
    heads = _counts("kept_heads", kept_heads, [s.heads for s in layers])
    neurons = _counts("kept_neurons", kept_neurons, [s.neurons for s in layers])
    calibration.levels()
    masks: dict[str, Tensor] = {}
    for s, h, n in zip(layers, heads, neurons, strict=True):
        masks |= _apply_layer(s, calibration, h, n)
    return masks


# --- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerKept:
    layer: int
    heads: int
    heads_kept: tuple[int, ...]  # the kept heads' indices, ascending
    neurons: int
    neurons_kept: int
    removed_parameters: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "heads": self.heads,
            "heads_kept": len(self.heads_kept),
            "kept_heads": list(self.heads_kept),
            "neurons": self.neurons,
            "neurons_kept": self.neurons_kept,
            "removed_parameters": self.removed_parameters,
        }


@dataclass(frozen=True)
class StructureSummary:
    layers: tuple[LayerKept, ...]
    removed_parameters: int  # weights and biases of the removed structures
    total_parameters: int  # the whole model's (embeddings and task head included)

    @property
    def fraction_removed(self) -> float:
        return self.removed_parameters / self.total_parameters if self.total_parameters else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "heads": sum(x.heads for x in self.layers),
            "heads_kept": sum(len(x.heads_kept) for x in self.layers),
            "neurons": sum(x.neurons for x in self.layers),
            "neurons_kept": sum(x.neurons_kept for x in self.layers),
            "removed_parameters": self.removed_parameters,
            "total_parameters": self.total_parameters,
            "fraction_removed": self.fraction_removed,
            "layers": [x.as_dict() for x in self.layers],
        }


def _bias(linear: nn.Linear) -> int:
    return int(linear.bias is not None)


def head_parameters(s: LayerStructure) -> int:
    """The weights and biases one head of the layer takes (input rows and output columns)."""
    rows = sum(i.parts * (i.linear.in_features + _bias(i.linear)) for i in s.head_inputs)
    return s.head_dim * (rows + s.output.out_features)


def neuron_parameters(s: LayerStructure) -> int:
    """The weights and biases one FFN neuron takes (its fc1 row(s) and fc2 column)."""
    return (2 if s.gated else 1) * (s.fc1.in_features + _bias(s.fc1)) + s.fc2.out_features


def structure_summary(
    calibration: StructuredCalibration, kept_heads: Sequence[int], kept_neurons: Sequence[int]
) -> StructureSummary:
    """Per layer the kept heads (by index) and neurons, and the parameters removed."""
    layers = calibration.layers
    heads = _counts("kept_heads", kept_heads, [s.heads for s in layers])
    neurons = _counts("kept_neurons", kept_neurons, [s.neurons for s in layers])
    out = []
    for s, lv, h, n in zip(layers, calibration.levels(), heads, neurons, strict=True):
        removed = (s.heads - h) * head_parameters(s) + (s.neurons - n) * neuron_parameters(s)
        kept = tuple(int(g) for g in lv.heads.kept_groups(h))
        out.append(LayerKept(s.index, s.heads, kept, s.neurons, n, removed))
    total = sum(p.numel() for p in calibration.model.parameters())
    return StructureSummary(tuple(out), sum(x.removed_parameters for x in out), total)
