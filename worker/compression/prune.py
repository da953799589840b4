"""The pruning entry point and the method registry (config type -> handler)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import Tensor, nn

from worker.compression.config import MagnitudeConfig, OBertConfig, PruningConfig
from worker.compression.gradients import GradientSource
from worker.compression.magnitude import magnitude_prune
from worker.compression.masks import masks_from_weights
from worker.compression.obert import obert_prune
from worker.compression.request import PruneRequest
from worker.compression.selection import check_structure

Handler = Callable[[Any, PruneRequest], dict[str, Tensor]]

# A new method adds its config dataclass and a handler here.
PRUNERS: Mapping[type, Handler] = MappingProxyType(
    {MagnitudeConfig: magnitude_prune, OBertConfig: obert_prune}
)


def prune(
    config: PruningConfig,
    targets: Mapping[str, nn.Linear],
    sparsity: float,
    *,
    masks: Mapping[str, Tensor] | None = None,
    structure: Literal["unstructured", "block4"] = "unstructured",
    scope: Literal["global", "layerwise"] = "global",
    gradients: GradientSource | None = None,
    device: torch.device,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Tensor]:
    """Prune ``targets`` in place to ``sparsity`` and return the new masks (True = kept).

    Already-pruned weights (mask False; without ``masks``, the weights that are exactly zero)
    stay pruned and count toward the target. The target is met exactly:
    ``round(sparsity * units)`` pruned units over all targets (``global``) or per target
    (``layerwise``), where a unit is a weight or, for ``block4``, 4 consecutive weights along
    the input dimension. Pruned weights are exactly zero afterwards. ``progress(frac)`` is
    called during long work; an exception raised from it propagates (cancellation).
    """
    handler = PRUNERS.get(type(config))
    if handler is None:
        raise TypeError(f"no pruning method registered for {type(config).__name__}")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if scope not in ("global", "layerwise"):
        raise ValueError(f"unknown scope {scope!r}")
    if not targets:
        raise ValueError("no targets to prune")
    for name, module in targets.items():
        check_structure(name, module.weight, structure)
    current = masks_from_weights(targets)
    if masks is not None:
        for name, module in targets.items():
            if name in masks:
                mask = masks[name].to(device=module.weight.device, dtype=torch.bool)
                if mask.shape != module.weight.shape:
                    raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}")
                current[name] = mask
    request = PruneRequest(
        targets=targets,
        sparsity=sparsity,
        masks=current,
        structure=structure,
        scope=scope,
        gradients=gradients,
        device=device,
        progress=progress,
    )
    return handler(config, request)
