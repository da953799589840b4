"""Exact removal of the feed-forward neurons that pruning emptied.

Global pruning empties whole neurons: in a feed-forward block
``y = W2 act(W1 x + b1) + b2`` a neuron ``i`` whose input row ``W1[i]`` is all zero outputs
the constant ``act(b1[i])`` for every token, so its contribution ``W2[:, i] act(b1[i])`` can
move into ``b2``; a neuron whose output column ``W2[:, i]`` is all zero contributes nothing.
Removing both kinds gives narrower Linear layers computing the same function (up to float
rounding of the folded bias), which dense kernels run faster: the speed a runtime without
sparse kernels can take from unstructured sparsity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class FfnCompaction:
    """What :func:`compact_ffn` removed from one block."""

    neurons: int  # before
    kept: int
    constant: int  # input row all zero: folded into the output bias
    dead: int  # output column all zero (and input row not): dropped

    def as_dict(self) -> dict[str, int]:
        return {
            "neurons": self.neurons,
            "kept": self.kept,
            "constant": self.constant,
            "dead": self.dead,
        }


def empty_neurons(fc1: nn.Linear, fc2: nn.Linear) -> tuple[Tensor, Tensor]:
    """Boolean masks over the hidden neurons: (constant: input row all zero, dead: output
    column all zero and not constant)."""
    if fc2.in_features != fc1.out_features:
        raise ValueError(f"fc2 takes {fc2.in_features} features but fc1 gives {fc1.out_features}")
    constant = fc1.weight.detach().eq(0).all(dim=1)
    dead = fc2.weight.detach().eq(0).all(dim=0) & ~constant
    return constant, dead


def _linear_like(src: nn.Linear, weight: Tensor, bias: Tensor | None) -> nn.Linear:
    out = nn.Linear(
        weight.shape[1], weight.shape[0], bias=bias is not None,
        device=weight.device, dtype=weight.dtype,
    )  # fmt: skip
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None and out.bias is not None:
            out.bias.copy_(bias)
    out.train(src.training)
    return out


@torch.no_grad()
def compact_ffn(
    fc1: nn.Linear, fc2: nn.Linear, act: Callable[[Tensor], Tensor]
) -> tuple[nn.Linear, nn.Linear, FfnCompaction]:
    """New (fc1, fc2) without the empty neurons of ``fc2(act(fc1(x)))``; the inputs are left
    unchanged. At least one neuron is kept (a zero-width layer is not a valid graph); if every
    neuron is empty the one kept gets a zero output column after the fold."""
    constant, dead = empty_neurons(fc1, fc2)
    n = fc1.out_features
    b1: Tensor = (
        fc1.bias.detach()
        if fc1.bias is not None
        else torch.zeros(n, dtype=fc1.weight.dtype, device=fc1.weight.device)
    )
    w2 = fc2.weight.detach().clone()
    b2 = (
        fc2.bias.detach().clone()
        if fc2.bias is not None
        else torch.zeros(fc2.out_features, dtype=w2.dtype, device=w2.device)
    )
    if bool(constant.any()):
        folded = act(b1[constant].to(torch.float64).unsqueeze(0)).squeeze(0)
        b2 += (w2[:, constant].to(torch.float64) @ folded).to(b2.dtype)
    keep = ~(constant | dead)
    if not bool(keep.any()):
        keep[0] = True
        w2[:, 0] = 0.0
    idx = keep.nonzero().squeeze(1)
    new1 = _linear_like(
        fc1, fc1.weight.detach()[idx], None if fc1.bias is None else fc1.bias.detach()[idx]
    )
    has_bias = fc2.bias is not None or bool(constant.any())
    new2 = _linear_like(fc2, w2[:, idx], b2 if has_bias else None)
    report = FfnCompaction(
        neurons=n, kept=int(idx.numel()), constant=int(constant.sum()), dead=int(dead.sum())
    )
    return new1, new2, report
