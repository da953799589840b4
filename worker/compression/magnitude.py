"""Magnitude pruning."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from worker.compression.config import MagnitudeConfig
from worker.compression.request import PruneRequest, finish_masks
from worker.compression.selection import Structure, block_sum, pruned_units, select_to_prune


def magnitude_scores(targets: Mapping[str, nn.Linear], structure: Structure) -> dict[str, Tensor]:
    """|w| per weight, or the L2 norm of each block of 4 (as its square, same order)."""
    with torch.no_grad():
        if structure == "unstructured":
            return {n: m.weight.detach().abs().float() for n, m in targets.items()}
        return {n: block_sum(m.weight.detach().float() ** 2, structure) for n, m in targets.items()}


def magnitude_prune(config: MagnitudeConfig, request: PruneRequest) -> dict[str, Tensor]:
    del config
    scores = magnitude_scores(request.targets, request.structure)
    already = {n: pruned_units(request.masks[n], request.structure) for n in request.targets}
    new = select_to_prune(scores, already, request.sparsity, request.scope)
    if request.progress is not None:
        request.progress(1.0)
    return finish_masks(request, new)
