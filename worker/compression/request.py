"""The arguments of one pruning call, shared by every method's handler."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from worker.compression.gradients import GradientSource
from worker.compression.masks import apply_masks
from worker.compression.selection import Scope, Structure, expand_units


@dataclass
class PruneRequest:
    targets: Mapping[str, nn.Linear]
    sparsity: float
    masks: dict[str, Tensor]  # current masks (bool, True = kept), on each weight's device
    structure: Structure
    scope: Scope
    gradients: GradientSource | None
    device: torch.device
    progress: Callable[[float], None] | None


def finish_masks(
    request: PruneRequest, newly_pruned_units: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """New masks = current masks minus the newly pruned units; zero the pruned weights."""
    out: dict[str, Tensor] = {}
    for name, module in request.targets.items():
        new = expand_units(newly_pruned_units[name], request.structure).to(module.weight.device)
        out[name] = request.masks[name] & ~new
    apply_masks(request.targets, out)
    return out
