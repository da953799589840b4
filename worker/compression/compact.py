"""Exact removal of the feed-forward neurons that pruning emptied.

Global pruning empties whole neurons: in a feed-forward block
``y = W2 act(W1 x + b1) + b2`` a neuron ``i`` whose input row ``W1[i]`` is all zero outputs
the constant ``act(b1[i])`` for every token, so its contribution ``W2[:, i] act(b1[i])`` can
move into ``b2``; a neuron whose output column ``W2[:, i]`` is all zero contributes nothing.

A gated block (ModernBERT's GLU: ``W1`` holds the inputs in rows ``0..n-1`` and the gates in
rows ``n..2n-1``, ``y = W2 (act(u) * g) + b2``) has neuron ``i`` in rows ``i`` and ``n + i``
of ``W1`` and column ``i`` of ``W2``. It contributes nothing when its output column is zero,
when its gate row and gate bias are zero (``g = 0``), or when its input row and input bias
are zero and ``act(0)`` is exactly 0; it is the constant ``act(b1[i]) * b1[n + i]`` when both
its input and gate rows are zero, folded into ``b2``.

Removing them gives narrower Linear layers computing the same function (up to float rounding
of the folded bias), which dense kernels run faster: the speed a runtime without sparse
kernels can take from unstructured sparsity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

Activation = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class FfnCompaction:
    """What :func:`compact_ffn` removed from one block."""

    neurons: int  # before
    kept: int
    constant: int  # input (and gate) rows all zero: folded into the output bias
    dead: int  # contributes nothing (and is not constant): dropped

    def as_dict(self) -> dict[str, int]:
        return {
            "neurons": self.neurons,
            "kept": self.kept,
            "constant": self.constant,
            "dead": self.dead,
        }


def _bias(linear: nn.Linear) -> Tensor:
    if linear.bias is not None:
        return linear.bias.detach()
    return torch.zeros(linear.out_features, dtype=linear.weight.dtype, device=linear.weight.device)


def _width(fc1: nn.Linear, fc2: nn.Linear, gated: bool) -> int:
    n = fc1.out_features // 2 if gated else fc1.out_features
    if gated and fc1.out_features % 2:
        raise ValueError(f"a gated fc1 has an even number of rows, not {fc1.out_features}")
    if fc2.in_features != n:
        raise ValueError(f"fc2 takes {fc2.in_features} features but fc1 gives {n}")
    return n


def _zero_at_zero(act: Activation) -> bool:
    zero = torch.zeros(1, dtype=torch.float64)
    return bool(act(zero).eq(0).all())


def empty_neurons(
    fc1: nn.Linear, fc2: nn.Linear, act: Activation | None = None, *, gated: bool = False
) -> tuple[Tensor, Tensor]:
    """Boolean masks over the hidden neurons: (constant: input row all zero, and the gate row
    when `gated`; dead: contributes nothing and not constant). `act` is needed when `gated`."""
    n = _width(fc1, fc2, gated)
    w1, b1 = fc1.weight.detach(), _bias(fc1)
    rows_zero = w1.eq(0).all(dim=1)
    dead = fc2.weight.detach().eq(0).all(dim=0)
    if not gated:
        return rows_zero, dead & ~rows_zero
    if act is None:
        raise ValueError("a gated block needs its activation")
    inputs_zero, gates_zero = rows_zero[:n], rows_zero[n:]
    constant = inputs_zero & gates_zero
    dead = dead | (gates_zero & b1[n:].eq(0))
    if _zero_at_zero(act):
        dead = dead | (inputs_zero & b1[:n].eq(0))
    return constant, dead & ~constant


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
    fc1: nn.Linear, fc2: nn.Linear, act: Activation, *, gated: bool = False
) -> tuple[nn.Linear, nn.Linear, FfnCompaction]:
    """New (fc1, fc2) without the empty neurons of ``fc2(act(fc1(x)))`` (of
    ``fc2(act(u) * g)``, ``u, g = fc1(x).chunk(2)``, when `gated`); the inputs are left
    unchanged. At least one neuron is kept (a zero-width layer is not a valid graph); if every
    neuron is empty the one kept gets a zero output column after the fold."""
    n = _width(fc1, fc2, gated)
    constant, dead = empty_neurons(fc1, fc2, act, gated=gated)
    b1 = _bias(fc1)
    w2 = fc2.weight.detach().clone()
    b2 = _bias(fc2).clone()
    shift = torch.zeros_like(b2)
    if bool(constant.any()):
        folded = act(b1[:n][constant].to(torch.float64).unsqueeze(0)).squeeze(0)
        if gated:
            folded = folded * b1[n:][constant].to(torch.float64)
        shift = (w2[:, constant].to(torch.float64) @ folded).to(b2.dtype)
        b2 += shift
    keep = ~(constant | dead)
    if not bool(keep.any()):
        keep[0] = True
        w2[:, 0] = 0.0
    idx = keep.nonzero().squeeze(1)
    rows = torch.cat([idx, idx + n]) if gated else idx
    new1 = _linear_like(
        fc1, fc1.weight.detach()[rows], None if fc1.bias is None else fc1.bias.detach()[rows]
    )
    has_bias = fc2.bias is not None or bool(shift.ne(0).any())
    new2 = _linear_like(fc2, w2[:, idx], b2 if has_bias else None)
    report = FfnCompaction(
        neurons=n, kept=int(idx.numel()), constant=int(constant.sum()), dead=int(dead.sum())
    )
    return new1, new2, report
