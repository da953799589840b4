"""Structured Optimal Brain Surgeon for one output projection (ZipLM, Kurtic et al. 2023).

The layer-wise problem of a Linear ``y = W x (+ b)`` whose input columns come in structures of
``group_size`` consecutive columns (attention heads: ``d`` columns of the attention output
projection; FFN neurons: one column of the FFN output projection): with ``H = X^T X + lambda I``
summed over the calibration inputs, the loss of replacing W by W' is
``tr((W - W') H (W - W')^T)``, the squared output error summed over the calibration samples
(plus the ridge term). Removing the columns Q of one structure at the least loss costs

    ``tr(W_Q ((H^-1)_QQ)^-1 W_Q^T)``

(the papers' ``1/2 tr(...)`` with their Hessian ``2 X^T X``: the same number), reached by the
update ``dW = -W_Q ((H^-1)_QQ)^-1 (H^-1)_Q,:`` of the other columns, after which ``H^-1`` of the
rest is the Schur complement ``Hinv_RR - Hinv_RQ Hinv_QQ^-1 Hinv_QR``. :class:`StructuredOBS`
removes one structure at a time, greedily, from all G down to none, in one pass.

Levels are stored as the removal order and the cumulative loss, not as weights: the updated
weights after removing any set S are the unique constrained least-squares minimum
``W_K = W H_:K (H_KK)^-1`` on the kept columns K (the greedy updates compose to exactly that),
so :meth:`StructuredOBS.weight_at` recomputes them from H with one solve (storing every level
would take G * out * in floats: 3.6 GB for one 384 x 1536 FFN projection in float32).

With ``bias`` the bias is one more, never removed, input column of constant 1: the update then
also moves the bias to absorb the mean contribution of the removed structures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worker.compression.fisher import batched_spd_solve


@dataclass(frozen=True)
class StructuredLevels:
    """One greedy pass: ``loss[k]`` is the cumulative loss with k structures kept
    (``loss[num_groups] == 0``), ``order`` the structures in order of removal. Losses are
    summed over ``samples`` calibration rows; ``output_energy`` is the (undamped) summed
    squared norm of the dense layer's outputs, ``sum_x ||W x + b||^2``."""

    loss: Tensor  # (G + 1,) float64
    order: Tensor  # (G,) int64
    samples: int
    output_energy: float

    @property
    def num_groups(self) -> int:
        return int(self.order.numel())

    def kept_groups(self, kept: int) -> Tensor:
        """The structures kept at level ``kept``, ascending."""
        if not 0 <= kept <= self.num_groups:
            raise ValueError(f"kept must be in [0, {self.num_groups}], got {kept}")
        return torch.sort(self.order[self.num_groups - kept :]).values

    def per_sample(self) -> Tensor:
        """Losses per calibration row (the mean squared output error)."""
        return self.loss / max(self.samples, 1)

    def relative(self) -> Tensor:
        """Losses relative to the dense output energy (comparable across layers)."""
        return self.loss / self.output_energy if self.output_energy > 0 else self.loss


@dataclass(frozen=True)
class StructuredWeights:
    """The updated weights at one level: ``weight`` (out, kept * group_size) when compact,
    else (out, in) with the removed columns at exactly 0; ``columns`` the kept input columns."""

    weight: Tensor
    bias: Tensor | None
    groups: Tensor
    columns: Tensor


def structure_saliencies(weight: Tensor, hinv: Tensor, groups: int, size: int) -> Tensor:
    """``tr(W_Q ((H^-1)_QQ)^-1 W_Q^T)`` for each of the leading ``groups`` structures of
    ``size`` consecutive columns (float64, clamped at 0)."""
    w = weight[:, : groups * size]
    if size == 1:
        sal = w.square().sum(dim=0) / hinv.diagonal()[:groups]
    else:
        n = groups * size
        view = hinv[:n, :n].reshape(groups, size, groups, size)
        blocks = torch.diagonal(view, dim1=0, dim2=2).permute(2, 0, 1)  # (groups, size, size)
        wq = w.reshape(w.shape[0], groups, size).permute(1, 2, 0)
        sol = batched_spd_solve(blocks, wq)
        sal = (wq * sol).sum(dim=(1, 2))
    return sal.clamp_min(0.0)


def remove_columns(weight: Tensor, hinv: Tensor, columns: Tensor) -> float:
    """Remove the input ``columns`` Q at the least loss, in place: the other columns of
    ``weight`` get the update ``-W_Q ((H^-1)_QQ)^-1 (H^-1)_Q,:`` and ``hinv`` becomes the
    Schur complement on them; the columns Q of ``weight`` and the rows and columns Q of
    ``hinv`` end at 0 (their diagonal at 1, inert). Returns the loss
    ``tr(W_Q ((H^-1)_QQ)^-1 W_Q^T)``."""
    wq = weight[:, columns]
    hq = hinv[columns]
    block = hq[:, columns]
    # ((H^-1)_QQ)^-1 [(H^-1)_Q,: | W_Q^T] in one SPD solve.
    rhs = torch.cat([hq, wq.T], dim=1)
    chol, info = torch.linalg.cholesky_ex(block)
    if int(info) == 0:
        sol = torch.cholesky_solve(rhs, chol)
    else:
        sol = batched_spd_solve(block.unsqueeze(0), rhs.unsqueeze(0))[0]
    n = hinv.shape[0]
    m, lam = sol[:, :n], sol[:, n:]
    weight.addmm_(wq, m, alpha=-1.0)
    hinv.addmm_(hq.T, m, alpha=-1.0)
    weight[:, columns] = 0.0
    hinv[columns] = 0.0
    hinv[:, columns] = 0.0
    hinv[columns, columns] = 1.0
    return max(float((wq.T * lam).sum()), 0.0)


class StructuredOBS:
    """Greedy structured OBS of one output projection.

    Steps: :meth:`add_batch` (any number of times, the layer's inputs), :meth:`prune_levels`
    (one greedy pass over all levels), :meth:`weight_at` (the updated weights of any level, as
    often as needed), :meth:`free`. All state is float64 on ``device``.

    Dampening: ``lambda = damp * mean(diag(X^T X))`` over the real inputs is added to the whole
    diagonal. Dead inputs (a zero diagonal: the input is 0 on every calibration row) are
    decoupled as SparseGPT does: their diagonal is set to 1 and their weights to 0, which
    changes no calibration output, so a structure of dead inputs costs nothing and goes first.
    """

    def __init__(
        self,
        weight: Tensor,
        group_size: int,
        *,
        damp: float = 0.01,
        device: torch.device,
        bias: Tensor | None = None,
    ) -> None:
        if weight.dim() != 2:
            raise ValueError(f"weight must be (out, in), got shape {tuple(weight.shape)}")
        out, inp = weight.shape
        if group_size < 1 or inp % group_size:
            raise ValueError(f"group_size must be >= 1 and divide in_features={inp}")
        if not damp >= 0:
            raise ValueError(f"damp must be >= 0, got {damp}")
        if bias is not None and bias.shape != (out,):
            raise ValueError(f"bias must have shape ({out},), got {tuple(bias.shape)}")
        self.out_features, self.in_features = out, inp
        self.group_size = group_size
        self.num_groups = inp // group_size
        self.damp = float(damp)
        self.device = device
        self.has_bias = bias is not None
        self.samples = 0
        self.damping = 0.0
        w = weight.detach().to(device=device, dtype=torch.float64)
        if bias is not None:
            w = torch.cat([w, bias.detach().to(device=device, dtype=torch.float64)[:, None]], 1)
        self._weight: Tensor | None = w.clone()
        n = inp + int(self.has_bias)
        self._xtx: Tensor | None = torch.zeros(n, n, dtype=torch.float64, device=device)
        self._h: Tensor | None = None
        self.levels: StructuredLevels | None = None

    def _state(self) -> tuple[Tensor, Tensor]:
        if self._weight is None or self._xtx is None:
            raise RuntimeError("StructuredOBS was freed")
        return self._weight, self._xtx

    def add_batch(self, x: Tensor) -> None:
        """Accumulate ``X^T X`` of inputs ``x`` (..., in); every row is one sample (pass only
        real tokens, not padding)."""
        _, xtx = self._state()
        if self._h is not None:
            raise RuntimeError("add_batch after prune_levels")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x must end in in_features={self.in_features}, got {x.shape[-1]}")
        rows = x.detach().reshape(-1, self.in_features).to(self.device, torch.float64)
        if self.has_bias:
            rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)
        xtx.addmm_(rows.T, rows)
        self.samples += rows.shape[0]

    def _damped(self) -> Tensor:
        weight, xtx = self._state()
        h = xtx.clone()
        diag = h.diagonal()
        dead = (diag[: self.in_features] == 0).nonzero().flatten()
        live = diag[: self.in_features]
        live = live[live > 0]  # the mean over the real inputs: dead ones would shrink it
        self.damping = self.damp * float(live.mean()) if live.numel() else self.damp
        diag[dead] = 1.0
        weight[:, dead] = 0.0
        diag.add_(self.damping)
        return h

    def prune_levels(self) -> StructuredLevels:
        """Remove the structures one at a time, each time the one of least loss, with the
        optimal update of the rest; returns (and keeps) every level's loss and the order."""
        if self.levels is not None:
            return self.levels
        weight, xtx = self._state()
        if self.samples == 0:
            raise RuntimeError("prune_levels before any add_batch")
        h = self._damped()
        chol, info = torch.linalg.cholesky_ex(h)
        if int(info) != 0:
            raise ValueError("X^T X is singular: use damp > 0 or more calibration samples")
        hinv = torch.cholesky_inverse(chol)
        g, w = self.group_size, weight.clone()
        alive = torch.arange(self.num_groups, device=self.device)  # groups of w's columns
        gone = torch.zeros(self.num_groups, dtype=torch.bool, device=self.device)
        order: list[int] = []
        losses = [0.0]
        while len(order) < self.num_groups:
            sal = structure_saliencies(w, hinv, alive.numel(), g).masked_fill_(gone, torch.inf)
            p = int(torch.argmin(sal))
            cols = torch.arange(p * g, (p + 1) * g, device=self.device)
            losses.append(losses[-1] + remove_columns(w, hinv, cols))
            order.append(int(alive[p]))
            gone[p] = True
            if 4 * int(gone.sum()) >= alive.numel():  # compact: the cost falls with the size
                keep = (~gone).nonzero().flatten()
                k = (keep[:, None] * g + torch.arange(g, device=self.device)).flatten()
                if self.has_bias:
                    k = torch.cat([k, k.new_full((1,), hinv.shape[0] - 1)])
                w, hinv = w[:, k], hinv[k][:, k]
                alive, gone = alive[keep], gone[keep]
        energy = float((weight @ xtx * weight).sum())
        self._h = h
        self.levels = StructuredLevels(
            loss=torch.tensor(losses[::-1], dtype=torch.float64),
            order=torch.tensor(order, dtype=torch.int64),
            samples=self.samples,
            output_energy=energy,
        )
        return self.levels

    def weight_at(self, kept: int, *, compact: bool = True) -> StructuredWeights:
        """The updated weights with ``kept`` structures: the least-squares minimum
        ``W H_:K (H_KK)^-1`` on the kept columns K (float64, on ``device``)."""
        weight, _ = self._state()
        if self.levels is None or self._h is None:
            raise RuntimeError("call prune_levels() first")
        groups = self.levels.kept_groups(kept).to(self.device)
        g = self.group_size
        offsets = torch.arange(g, device=self.device)
        columns = (groups[:, None] * g + offsets).flatten()
        k = columns
        if self.has_bias:
            k = torch.cat([columns, columns.new_full((1,), self.in_features)])
        h = self._h
        v = torch.zeros(self.out_features, k.numel(), dtype=torch.float64, device=self.device)
        if k.numel():
            chol = torch.linalg.cholesky(h[k][:, k])
            v = torch.cholesky_solve(h[k] @ weight.T, chol).T
        bias = v[:, -1] if self.has_bias else None
        new = v[:, : columns.numel()]
        if not compact:
            new = torch.zeros(
                self.out_features, self.in_features, dtype=torch.float64, device=self.device
            ).index_copy_(1, columns, new)
        return StructuredWeights(weight=new, bias=bias, groups=groups, columns=columns)

    def free(self) -> None:
        """Drop H, its inverse and the working weights (the levels stay)."""
        self._weight = None
        self._xtx = None
        self._h = None
