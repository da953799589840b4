"""Layer dropping: keep N evenly spaced encoder layers of the teacher.

Kept indices are floor(i * L / N) for i = 0..N-1: 6 -> 3 keeps 0, 2, 4; 12 -> 6 keeps
0, 2, 4, 6, 8, 10 ("every other layer", as in the oBERT paper's 6-layer models); 12 -> 3 keeps
0, 4, 8. The bottom layer is always kept. Weights are copied from the teacher, the layers'
own index attributes renumbered, and config.num_hidden_layers updated.
"""

from __future__ import annotations

import copy

from torch import nn

from worker.pipelines.errors import UnsupportedSpec


def kept_layer_indices(num_layers: int, keep: int) -> list[int]:
    if keep < 1 or keep > num_layers:
        raise UnsupportedSpec(f"layers.keep={keep} but the model has {num_layers} layers")
    return [(i * num_layers) // keep for i in range(keep)]


def layer_list(model: nn.Module) -> tuple[nn.Module, str]:
    """The module holding the encoder layers and the name of its ModuleList."""
    base = getattr(model, "base_model", model)
    for owner_name, list_name in (("encoder", "layer"), ("transformer", "layer")):
        owner = getattr(base, owner_name, None)
        if owner is not None and isinstance(getattr(owner, list_name, None), nn.ModuleList):
            return owner, list_name
    raise UnsupportedSpec(f"layer dropping does not support {type(model).__name__}")


def drop_layers(model: nn.Module, keep: int) -> tuple[nn.Module, list[int]]:
    """Return a copy of `model` with `keep` evenly spaced encoder layers, and their indices."""
    student = copy.deepcopy(model)
    owner, list_name = layer_list(student)
    layers: nn.ModuleList = getattr(owner, list_name)
    kept = kept_layer_indices(len(layers), keep)
    new_layers = nn.ModuleList([layers[i] for i in kept])
    for new_idx, layer in enumerate(new_layers):
        for mod in layer.modules():
            if hasattr(mod, "layer_idx"):
                mod.layer_idx = new_idx  # type: ignore[assignment]
    setattr(owner, list_name, new_layers)
    config = getattr(student, "config", None)
    if config is not None:
        for attr in ("num_hidden_layers", "n_layers"):
            if hasattr(config, attr):
                setattr(config, attr, keep)
    return student, kept
