"""Layer dropping: keep N evenly spaced encoder layers of the teacher.

Kept indices are floor(i * L / N) for i = 0..N-1: 6 -> 3 keeps 0, 2, 4; 12 -> 6 keeps
0, 2, 4, 6, 8, 10 ("every other layer", as in the oBERT paper's 6-layer models); 12 -> 3 keeps
0, 4, 8. The bottom layer is always kept. Weights are copied from the teacher, the layers'
own index attributes renumbered, and the config kept in step through the family's table
entry: its layer count (`num_hidden_layers`, DistilBERT's `n_layers`) and every per-layer
config list (ModernBERT's `layer_types`), so a saved student reloads as the same model.
"""

from __future__ import annotations

import copy

from torch import nn

from worker.pipelines.architecture import architecture_of, layer_list
from worker.pipelines.errors import UnsupportedSpec


def kept_layer_indices(num_layers: int, keep: int) -> list[int]:
    if keep < 1 or keep > num_layers:
        raise UnsupportedSpec(f"layers.keep={keep} but the model has {num_layers} layers")
    return [(i * num_layers) // keep for i in range(keep)]


def drop_layers(model: nn.Module, keep: int) -> tuple[nn.Module, list[int]]:
    """Return a copy of `model` with `keep` evenly spaced encoder layers, and their indices."""
    arch = architecture_of(model)
    student = copy.deepcopy(model)
    owner, list_name, layers = layer_list(student)
    kept = kept_layer_indices(len(layers), keep)
    new_layers = nn.ModuleList([layers[i] for i in kept])
    for new_idx, layer in enumerate(new_layers):
        for mod in layer.modules():
            if hasattr(mod, "layer_idx"):
                mod.layer_idx = new_idx  # type: ignore[assignment]
    setattr(owner, list_name, new_layers)
    config = student.config
    for key in arch.per_layer_keys:
        values = getattr(config, key, None)
        if isinstance(values, list | tuple) and len(values) == len(layers):
            setattr(config, key, [values[i] for i in kept])
    setattr(config, arch.keys.layers, keep)
    return student, kept
