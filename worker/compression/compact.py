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

Attention heads likewise (:func:`compact_heads`): head ``i`` is columns ``[i*d, (i+1)*d)`` of
the output projection and rows ``[i*d, (i+1)*d)`` of each head-carrying input projection (of
each of the ``parts`` consecutive blocks of a fused one: query, key and value thirds). Each
head's scores, softmax and context are its own, so a head whose output columns are all zero
contributes nothing, and dropping its rows and columns leaves every other head and the output
unchanged, bit for bit up to the narrower sums' rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class HeadCompaction:
    """What :func:`compact_heads` removed from one attention block."""

    heads: int  # before
    kept: tuple[int, ...]  # the original indices of the heads left in the graph
    live: int  # of those, heads with a nonzero output column (0: one silent head kept)

    @property
    def removed(self) -> tuple[int, ...]:
        """The original indices of the heads whose output columns are all zero."""
        if not self.live:
            return tuple(range(self.heads))
        return tuple(i for i in range(self.heads) if i not in self.kept)

    def as_dict(self) -> dict[str, int | list[int]]:
        return {
            "heads": self.heads,
            "heads_kept": self.live,
            "heads_removed": list(self.removed),
            "heads_in_graph": len(self.kept),
        }


def _heads(width: int, head_dim: int, what: str) -> int:
    if head_dim < 1 or width % head_dim:
        raise ValueError(f"{what} has {width} features, not a multiple of the head size {head_dim}")
    return width // head_dim


def empty_heads(output: nn.Linear, head_dim: int) -> Tensor:
    """Boolean mask over the heads whose columns of the output projection are all zero."""
    heads = _heads(output.in_features, head_dim, "the output projection")
    zero = output.weight.detach().eq(0).view(output.out_features, heads, head_dim)
    return zero.all(dim=2).all(dim=0)


def head_rows(kept: Tensor, head_dim: int, heads: int, parts: int = 1) -> Tensor:
    """The indices of the rows (or columns) that carry the `kept` heads, in order, in each of
    `parts` consecutive blocks of ``heads * head_dim``."""
    one = (kept[:, None] * head_dim + torch.arange(head_dim, device=kept.device)).reshape(-1)
    return torch.cat([one + p * heads * head_dim for p in range(parts)])


@torch.no_grad()
def compact_heads(
    output: nn.Linear, inputs: Sequence[tuple[nn.Linear, int]], head_dim: int
) -> tuple[nn.Linear, list[nn.Linear], HeadCompaction]:
    """A new output projection without the empty heads' columns and new input projections
    (each given with its number of head blocks: 3 for a fused qkv) without their rows and
    biases; the modules given are left unchanged. At least one head is kept (zero heads is not
    a valid reshape): with every head empty, head 0 stays, its output columns zero."""
    heads = _heads(output.in_features, head_dim, "the output projection")
    for linear, parts in inputs:
        if linear.out_features != parts * heads * head_dim:
            raise ValueError(
                f"an input projection has {linear.out_features} rows, expected "
                f"{parts} x {heads} heads x {head_dim}"
            )
    keep = ~empty_heads(output, head_dim)
    live = int(keep.sum())
    if not live:
        keep[0] = True
    kept = keep.nonzero().squeeze(1)
    columns = head_rows(kept, head_dim, heads)
    bias = None if output.bias is None else output.bias.detach()
    new_output = _linear_like(output, output.weight.detach()[:, columns], bias)
    new_inputs = []
    for linear, parts in inputs:
        rows = head_rows(kept, head_dim, heads, parts).to(linear.weight.device)
        b = None if linear.bias is None else linear.bias.detach()[rows]
        new_inputs.append(_linear_like(linear, linear.weight.detach()[rows], b))
    report = HeadCompaction(heads=heads, kept=tuple(int(i) for i in kept), live=live)
    return new_output, new_inputs, report
