"""Export-time compaction: each encoder layer's emptied feed-forward neurons removed exactly.

Runs on a copy of the compressed model just before ONNX export (the PyTorch artifact keeps its
shapes, so it still loads with its config). Supports BERT-style layers (`intermediate.dense`,
`intermediate.intermediate_act_fn`, `output.dense`) and DistilBERT-style ones (`ffn.lin1`,
`ffn.activation`, `ffn.lin2`); other layers are left as they are. The export stage's parity
check against the uncompacted PyTorch model is what shows the result computes the same thing.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from worker.compression.compact import compact_ffn
from worker.pipelines.errors import UnsupportedSpec
from worker.pipelines.layers import layer_list

# (block holding fc1 and the activation, fc1, activation, block holding fc2, fc2)
_FFN_PATTERNS = (
    ("intermediate", "dense", "intermediate_act_fn", "output", "dense"),
    ("ffn", "lin1", "activation", "ffn", "lin2"),
)


def _ffn_parts(layer: nn.Module) -> tuple[nn.Module, str, Any, nn.Module, str] | None:
    for in_block, fc1, act, out_block, fc2 in _FFN_PATTERNS:
        a, b = getattr(layer, in_block, None), getattr(layer, out_block, None)
        if a is None or b is None:
            continue
        if (
            isinstance(getattr(a, fc1, None), nn.Linear)
            and isinstance(getattr(b, fc2, None), nn.Linear)
            and callable(getattr(a, act, None))
        ):
            return a, fc1, getattr(a, act), b, fc2
    return None


def compact_feed_forward(model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `model` with its empty feed-forward neurons removed, and what was removed
    (`model` itself, with `applied` false, when there is nothing to remove)."""
    try:
        layer_list(model)
    except UnsupportedSpec:
        return model, {"applied": False, "reason": "no encoder layer list"}
    out = copy.deepcopy(model)
    owner, name = layer_list(out)
    layers: list[dict[str, Any]] = []
    for index, layer in enumerate(getattr(owner, name)):
        parts = _ffn_parts(layer)
        if parts is None:
            layers.append({"layer": index, "compacted": False})
            continue
        in_block, fc1_name, act, out_block, fc2_name = parts
        fc1, fc2, report = compact_ffn(
            getattr(in_block, fc1_name), getattr(out_block, fc2_name), act
        )
        setattr(in_block, fc1_name, fc1)
        setattr(out_block, fc2_name, fc2)
        layers.append({"layer": index, "compacted": True, **report.as_dict()})
    done = [x for x in layers if x["compacted"]]
    removed = sum(x["neurons"] - x["kept"] for x in done)
    summary = {
        "applied": removed > 0,
        "method": "feed-forward neurons with an all-zero input row (constant output folded "
        "into the next bias) or an all-zero output column removed",
        "ffn_neurons": sum(x["neurons"] for x in done),
        "ffn_neurons_kept": sum(x["kept"] for x in done),
        "layers": layers,
    }
    return (out if removed else model), summary
