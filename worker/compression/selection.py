"""Pruning units (single weights or blocks of 4 along the input dimension) and exact,
memory-safe selection of the lowest-scoring units, globally or per layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

Structure = Literal["unstructured", "block4"]
Scope = Literal["global", "layerwise"]

BLOCK = 4


def unit_count(weight: Tensor, structure: Structure) -> int:
    return weight.numel() if structure == "unstructured" else weight.numel() // BLOCK


def check_structure(name: str, weight: Tensor, structure: Structure) -> None:
    if structure not in ("unstructured", "block4"):
        raise ValueError(f"unknown structure {structure!r}")
    if structure == "block4" and (weight.dim() != 2 or weight.shape[1] % BLOCK != 0):
        raise ValueError(
            f"block4 needs in_features divisible by {BLOCK}; {name} has shape {tuple(weight.shape)}"
        )


def pruned_units(mask: Tensor, structure: Structure) -> Tensor:
    """Units already pruned (every weight in them masked off), shaped (out, in) or
    (out, in/4)."""
    pruned = ~mask
    if structure == "unstructured":
        return pruned
    return pruned.view(mask.shape[0], mask.shape[1] // BLOCK, BLOCK).all(dim=-1)


def expand_units(units: Tensor, structure: Structure) -> Tensor:
    """A weight-shaped bool tensor from a unit-shaped one."""
    if structure == "unstructured":
        return units
    return units.repeat_interleave(BLOCK, dim=1)


def block_sum(values: Tensor, structure: Structure) -> Tensor:
    """Sum a weight-shaped tensor over each unit."""
    if structure == "unstructured":
        return values
    return values.view(values.shape[0], values.shape[1] // BLOCK, BLOCK).sum(dim=-1)


def _ordered_keys(scores: Tensor) -> Tensor:
    """int64 keys in [0, 2^32) whose order is the float32 order of the scores (NaN last)."""
    x = torch.nan_to_num(scores.detach().float(), nan=float("inf"))
    bits = x.contiguous().view(torch.int32)
    signed = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return signed.to(torch.int64) + (1 << 31)


_RADIX_BITS = 8


def _select_lowest(
    scores: Mapping[str, Tensor], valid: Mapping[str, Tensor], count: int
) -> dict[str, Tensor]:
    """Exactly ``count`` of the valid units with the lowest scores, over all entries; ties are
    broken in entry order, then by flat index (deterministic). An exact radix selection on the
    32-bit float order: four counting passes (a 256-bin histogram of one byte each), entry by
    entry, so no concatenated or sorted copy of all scores is ever made."""
    names = list(scores)
    chosen = {name: torch.zeros_like(valid[name]) for name in names}
    available = sum(int(valid[name].sum().item()) for name in names)
    count = min(count, available)
    if count <= 0:
        return chosen
    keys = {name: _ordered_keys(scores[name]) for name in names}
    bins = 1 << _RADIX_BITS
    prefix = 0
    remaining = count
    for level in range(32 // _RADIX_BITS):
        shift = 32 - _RADIX_BITS * (level + 1)
        hist = torch.zeros(bins, dtype=torch.int64)
        for name in names:
            k = keys[name]
            match = valid[name] if level == 0 else valid[name] & ((k >> (shift + 8)) == prefix)
            digits = (k[match] >> shift) & (bins - 1)
            hist += torch.bincount(digits, minlength=bins).cpu()
        cumulative = torch.cumsum(hist, dim=0)
        digit = int(torch.searchsorted(cumulative, torch.tensor(remaining)).item())
        remaining -= int(cumulative[digit - 1].item()) if digit > 0 else 0
        prefix = (prefix << _RADIX_BITS) | digit
    threshold = prefix
    below = {n: (keys[n] < threshold) & valid[n] for n in names}
    remaining = count - sum(int(b.sum().item()) for b in below.values())
    for name in names:
        sel = below[name]
        if remaining > 0:
            ties = ((keys[name] == threshold) & valid[name]).flatten()
            order = torch.cumsum(ties.to(torch.int64), dim=0)
            take = ties & (order <= remaining)
            remaining -= int(take.sum().item())
            sel = sel | take.view_as(sel)
        chosen[name] = sel
    return chosen


def select_to_prune(
    scores: Mapping[str, Tensor],
    already: Mapping[str, Tensor],
    sparsity: float,
    scope: Scope,
) -> dict[str, Tensor]:
    """Units newly pruned so that exactly ``round(sparsity * units)`` are pruned, counting the
    already-pruned ones (globally, or per entry for ``layerwise``). Already-pruned units stay
    pruned; if they already exceed the target nothing new is pruned. Returns unit-shaped bool
    tensors of the newly pruned units."""
    if scope == "global":
        total = sum(s.numel() for s in scores.values())
        done = sum(int(a.sum().item()) for a in already.values())
        need = round(sparsity * total) - done
        valid = {n: ~already[n] for n in scores}
        return _select_lowest(scores, valid, need)
    if scope == "layerwise":
        out: dict[str, Tensor] = {}
        for name, s in scores.items():
            need = round(sparsity * s.numel()) - int(already[name].sum().item())
            out.update(_select_lowest({name: s}, {name: ~already[name]}, need))
        return out
    raise ValueError(f"unknown scope {scope!r}")
