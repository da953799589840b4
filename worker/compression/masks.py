"""Masks: applying them, holding them during training, and measuring sparsity."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


def _check_mask(name: str, weight: Tensor, mask: Tensor) -> Tensor:
    if mask.shape != weight.shape:
        raise ValueError(
            f"mask for {name!r} has shape {tuple(mask.shape)}, weight has {tuple(weight.shape)}"
        )
    return mask.to(device=weight.device, dtype=torch.bool)


def apply_masks(targets: Mapping[str, nn.Linear], masks: Mapping[str, Tensor]) -> None:
    """Zero the pruned weights (mask False) in place. Targets without a mask are left alone."""
    with torch.no_grad():
        for name, module in targets.items():
            if name in masks:
                mask = _check_mask(name, module.weight, masks[name])
                module.weight.masked_fill_(~mask, 0.0)


class MaskHold:
    """Keeps pruned weights at zero during training.

    Gradient hooks zero the gradients of pruned weights; call :meth:`reapply` after each
    optimizer step, since weight decay and momentum (AdamW) could otherwise move them off zero.
    """

    def __init__(self, targets: Mapping[str, nn.Linear], masks: Mapping[str, Tensor]) -> None:
        self._targets = dict(targets)
        self._pruned: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self.update(masks)
        for name, module in self._targets.items():
            self._handles.append(
                module.weight.register_hook(self._make_hook(name))  # type: ignore[no-untyped-call]
            )

    def _make_hook(self, name: str) -> Callable[[Tensor], Tensor]:
        def hook(grad: Tensor) -> Tensor:
            pruned = self._pruned.get(name)
            if pruned is None:
                return grad
            return grad.masked_fill(pruned, 0.0)

        return hook

    @property
    def masks(self) -> dict[str, Tensor]:
        """The held masks (True = kept)."""
        return {name: ~pruned for name, pruned in self._pruned.items()}

    def update(self, masks: Mapping[str, Tensor]) -> None:
        """Replace the held masks and zero the newly pruned weights."""
        for name, mask in masks.items():
            if name not in self._targets:
                raise KeyError(f"mask for unknown target {name!r}")
            self._pruned[name] = ~_check_mask(name, self._targets[name].weight, mask)
        self.reapply()

    def reapply(self) -> None:
        """Zero the pruned weights again (call after each optimizer step)."""
        with torch.no_grad():
            for name, pruned in self._pruned.items():
                self._targets[name].weight.masked_fill_(pruned, 0.0)

    def remove(self) -> None:
        """Remove the gradient hooks; weights keep their current values."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def hold_masks(targets: Mapping[str, nn.Linear], masks: Mapping[str, Tensor]) -> MaskHold:
    """Zero pruned weights now and keep them at zero while training (see :class:`MaskHold`)."""
    return MaskHold(targets, masks)


@dataclass(frozen=True)
class SparsityReport:
    overall: float
    per_layer: dict[str, float] = field(default_factory=dict)
    zeros: int = 0
    total: int = 0


def sparsity_of(targets: Mapping[str, nn.Linear]) -> SparsityReport:
    """Fraction of exactly-zero weights, per target and over all targets."""
    per_layer: dict[str, float] = {}
    zeros = 0
    total = 0
    with torch.no_grad():
        for name, module in targets.items():
            w = module.weight
            z = int((w == 0).sum().item())
            n = w.numel()
            per_layer[name] = z / n if n else 0.0
            zeros += z
            total += n
    return SparsityReport(
        overall=zeros / total if total else 0.0, per_layer=per_layer, zeros=zeros, total=total
    )


def masks_from_weights(targets: Mapping[str, nn.Linear]) -> dict[str, Tensor]:
    """Masks that keep exactly the non-zero weights."""
    with torch.no_grad():
        return {name: module.weight != 0 for name, module in targets.items()}
