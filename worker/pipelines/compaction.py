"""Export-time compaction: each encoder layer's emptied feed-forward neurons removed exactly.

Runs on a copy of the compressed model just before ONNX export (the PyTorch artifact keeps its
shapes, so it still loads with its config; the compacted copy's layers may differ in width, so
its config's FFN size is left as it was: no forward reads it). The feed-forward block of each
layer is where the family's table entry puts it (`FeedForward`: fc1, fc2, the activation, and
whether fc1 is ModernBERT's gated GLU); a layer without that form is left as it is. The export
stage's parity check against the uncompacted PyTorch model is what shows the result computes
the same thing.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from worker.compression.compact import compact_ffn
from worker.pipelines.architecture import (
    architecture_of,
    feed_forward,
    layer_list,
    set_attribute,
)
from worker.pipelines.errors import ModelInvalid


def compact_feed_forward(model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `model` with its empty feed-forward neurons removed, and what was removed
    (`model` itself, with `applied` false, when there is nothing to remove)."""
    try:
        arch = architecture_of(model)
        layer_list(model)
    except ModelInvalid:
        return model, {"applied": False, "reason": "no encoder layer list"}
    out = copy.deepcopy(model)
    _, _, layer_modules = layer_list(out)
    layers: list[dict[str, Any]] = []
    for index, layer in enumerate(layer_modules):
        block = feed_forward(layer, arch)
        if block is None:
            layers.append({"layer": index, "compacted": False})
            continue
        fc1, fc2, report = compact_ffn(block.fc1, block.fc2, block.activation, gated=block.gated)
        set_attribute(layer, block.fc1_path, fc1)
        set_attribute(layer, block.fc2_path, fc2)
        layers.append({"layer": index, "compacted": True, **report.as_dict()})
    done = [x for x in layers if x["compacted"]]
    removed = sum(x["neurons"] - x["kept"] for x in done)
    summary = {
        "applied": removed > 0,
        "method": "feed-forward neurons with an all-zero input row (constant output folded "
        "into the next bias) or an all-zero output column removed"
        + ("; a gated neuron also when its gate is zero" if arch.ffn.gated else ""),
        "ffn_neurons": sum(x["neurons"] for x in done),
        "ffn_neurons_kept": sum(x["kept"] for x in done),
        "layers": layers,
    }
    return (out if removed else model), summary
