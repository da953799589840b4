"""Export-time compaction: each encoder layer's removed attention heads and emptied
feed-forward neurons cut out of the graph exactly.

Runs on a copy of the compressed model just before ONNX export. The PyTorch artifact (the HF
directory the user downloads) keeps its shapes, so it still loads with its config:
transformers 5 has no `prune_heads`, and its config holds one head count and one FFN width for
every layer. The compacted copy's layers may differ in head count and width; its config is left
as it was (no forward reads those sizes once the modules are rebuilt).

Heads (`compact_heads`): head i of a layer is removed when its columns of the attention output
projection are all zero (the structured stage also zeroes its query/key/value rows). Where the
table entry places them (`AttentionHeads`, resolved by `layer_structures`), its rows of the
query, key and value projections (each third of ModernBERT's fused Wqkv, DeBERTa's position
projections when present) and their biases are dropped with the output columns, and the
attention module's head-count and all-heads-width attributes are set to the layer's own. A
per-head bias computed once for all layers (MPNet's relative position bias) reaches each
compacted layer sliced to its heads by a forward pre-hook on its attention module. A layer
whose heads are all removed keeps one silent head (zero output columns): the block then gives
only the output projection's bias, as before.

Feed-forward neurons (`compact_ffn`, from the table's `FeedForward`): an all-zero input row
(constant output folded into the next bias) or output column; a layer without that form is
left as it is. The export stage's parity check against the uncompacted PyTorch model is what
shows the result computes the same thing.
"""

from __future__ import annotations

import copy
import inspect
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from app.architectures import Architecture
from worker.compression.compact import compact_ffn, compact_heads
from worker.pipelines.architecture import (
    architecture_of,
    attribute,
    feed_forward,
    layer_list,
    layer_prefix,
    set_attribute,
)
from worker.pipelines.errors import ModelInvalid
from worker.pipelines.structured_calibrate import LayerStructure, layer_structures

SHARED_BIAS_HEADS = "compacted_bias_heads"  # the buffer of a layer's heads in the shared bias
PYTORCH_NOTE = (
    "the PyTorch model (HF directory) keeps its shapes, removed heads and neurons as zeros: "
    "transformers 5 has no prune_heads and its config holds one size for every layer; only "
    "the ONNX graphs are compacted"
)


def compact_feed_forward(model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `model` with its empty feed-forward neurons removed, and what was removed
    (`model` itself, with `applied` false, when there is nothing to remove)."""
    try:
        arch = architecture_of(model)
        layer_list(model)
    except ModelInvalid:
        return model, {"applied": False, "reason": "no encoder layer list"}
    out = copy.deepcopy(model)
    layers = _compact_ffn_layers(out, arch)
    summary = {"applied": _neurons_removed(layers) > 0, **_ffn_summary(arch, layers)}
    return (out if summary["applied"] else model), summary


def compact_structures(model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `model` with its removed attention heads and empty feed-forward neurons cut
    out, and a summary (heads kept and removed per layer, neurons kept); `model` itself, with
    `applied` false, when there is nothing to remove."""
    try:
        arch = architecture_of(model)
        layer_list(model)
    except ModelInvalid:
        return model, {"applied": False, "reason": "no encoder layer list"}
    out = copy.deepcopy(model)
    heads, reason = _compact_head_layers(out, arch)
    ffn = _compact_ffn_layers(out, arch)
    by_layer = {x["layer"]: x for x in heads}
    layers = [{**x, **by_layer.get(x["layer"], {})} for x in ffn]
    done = [x for x in heads if x.get("heads_compacted")]
    heads_cut = sum(x["heads"] - x["heads_in_graph"] for x in done)
    removed = heads_cut + _neurons_removed(ffn)
    summary: dict[str, Any] = {"applied": removed > 0, **_ffn_summary(arch, ffn)}
    summary["method"] = (
        "attention heads whose output-projection columns are all zero removed with their "
        "query/key/value rows (each third of a fused qkv, the position projections) and "
        "biases; a layer left without heads keeps one silent head; " + _ffn_method(arch)
    )
    summary |= {
        "attention_heads": sum(x["heads"] for x in heads),
        "attention_heads_kept": sum(x.get("heads_kept", x["heads"]) for x in heads),
        "heads_per_layer": [x.get("heads_kept", x["heads"]) for x in heads],
        **({"heads_reason": reason} if reason else {}),
        "layers": layers,
        "pytorch_model": PYTORCH_NOTE,
    }
    return (out if removed else model), summary


def _neurons_removed(layers: list[dict[str, Any]]) -> int:
    return sum(x["neurons"] - x["kept"] for x in layers if x["compacted"])


def _ffn_method(arch: Architecture) -> str:
    return (
        "feed-forward neurons with an all-zero input row (constant output folded into the next "
        "bias) or an all-zero output column removed"
        + ("; a gated neuron also when its gate is zero" if arch.ffn.gated else "")
    )


def _ffn_summary(arch: Architecture, layers: list[dict[str, Any]]) -> dict[str, Any]:
    done = [x for x in layers if x["compacted"]]
    return {
        "method": _ffn_method(arch),
        "ffn_neurons": sum(x["neurons"] for x in done),
        "ffn_neurons_kept": sum(x["kept"] for x in done),
        "layers": layers,
    }


def _compact_ffn_layers(model: nn.Module, arch: Architecture) -> list[dict[str, Any]]:
    """Every layer's feed-forward block compacted in place (`model` is the copy)."""
    layers: list[dict[str, Any]] = []
    for index, layer in enumerate(layer_list(model)[2]):
        block = feed_forward(layer, arch)
        if block is None:
            layers.append({"layer": index, "compacted": False})
            continue
        fc1, fc2, report = compact_ffn(block.fc1, block.fc2, block.activation, gated=block.gated)
        set_attribute(layer, block.fc1_path, fc1)
        set_attribute(layer, block.fc2_path, fc2)
        layers.append({"layer": index, "compacted": True, **report.as_dict()})
    return layers


def _compact_head_layers(
    model: nn.Module, arch: Architecture
) -> tuple[list[dict[str, Any]], str | None]:
    """Every layer's empty heads removed in place (`model` is the copy); per layer what was
    kept, and why heads were left in place when they were."""
    try:
        structures = layer_structures(model)
    except ModelInvalid as e:
        return [], f"heads left in place: {e.message}"
    layers = layer_list(model)[2]
    prefix = layer_prefix(model)
    out: list[dict[str, Any]] = []
    for s in structures:
        layer = layers[s.index]
        module = attribute(layer, arch.attention.module) if arch.attention.module else None
        problem = _attention_problem(module, arch, s)
        if problem is not None or module is None:
            out.append({"layer": s.index, "heads": s.heads, "heads_compacted": False,
                        "heads_reason": problem})  # fmt: skip
            continue
        inputs = [(h.linear, h.parts) for h in s.head_inputs]
        output, new_inputs, report = compact_heads(s.output, inputs, s.head_dim)
        if len(report.kept) < s.heads:
            set_attribute(layer, arch.attention.output, output)
            for h, linear in zip(s.head_inputs, new_inputs, strict=True):
                set_attribute(layer, h.name.removeprefix(f"{prefix}{s.index}."), linear)
            _set_head_counts(module, arch, len(report.kept), s.head_dim)
            if arch.attention.shared_bias is not None:
                kept = torch.tensor(report.kept, dtype=torch.long, device=s.output.weight.device)
                _slice_shared_bias(module, arch.attention.shared_bias, kept)
        out.append({"layer": s.index, "heads_compacted": True, **report.as_dict()})
    return out, None


def _attention_problem(module: Any, arch: Architecture, s: LayerStructure) -> str | None:
    """Why the layer's attention module cannot take fewer heads, or None when it can."""
    att = arch.attention
    if not isinstance(module, nn.Module):
        return f"no attention module at {att.module}"
    expected = {att.count: s.heads, att.width: s.heads * s.head_dim}
    for name, value in expected.items():
        if name is not None and getattr(module, name, None) != value:
            return f"{att.module}.{name} is {getattr(module, name, None)!r}, expected {value}"
    if att.shared_bias is not None and _argument_position(module, att.shared_bias) is None:
        return f"{att.module}'s forward takes no {att.shared_bias}"
    return None


def _set_head_counts(module: nn.Module, arch: Architecture, heads: int, head_dim: int) -> None:
    att = arch.attention
    if att.count is not None:
        setattr(module, att.count, heads)
    if att.width is not None:
        setattr(module, att.width, heads * head_dim)


def _argument_position(module: nn.Module, name: str) -> int | None:
    names = list(inspect.signature(module.forward).parameters)
    return names.index(name) if name in names else None


def _slice_shared_bias(module: nn.Module, name: str, kept: Tensor) -> None:
    """Have `module` take only its `kept` heads of the shared per-head bias argument `name`
    (a second compaction narrows the heads it already took)."""
    before = getattr(module, SHARED_BIAS_HEADS, None)
    if isinstance(before, Tensor):
        setattr(module, SHARED_BIAS_HEADS, before[kept.to(before.device)])
        return
    module.register_buffer(SHARED_BIAS_HEADS, kept, persistent=False)
    module.register_forward_pre_hook(partial(_shared_bias_hook, name), with_kwargs=True)


def _shared_bias_hook(
    name: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Forward pre-hook: the shared bias argument `name` (batch, heads, query, key) sliced on
    its head axis to the module's heads."""
    heads = getattr(module, SHARED_BIAS_HEADS)
    if name in kwargs:
        if kwargs[name] is not None:
            kwargs = {**kwargs, name: kwargs[name].index_select(1, heads)}
        return args, kwargs
    at = _argument_position(module, name)
    if at is not None and at < len(args) and args[at] is not None:
        args = (*args[:at], args[at].index_select(1, heads), *args[at + 1 :])
    return args, kwargs
