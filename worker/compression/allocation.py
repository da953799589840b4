"""Latency-aware allocation of kept structures across layers (SPDY / ZipLM).

Every layer (a module whose structures are pruned: one layer's attention heads, or its FFN
neurons) offers options: a kept count, the loss of keeping that many (e.g. the normalised
:class:`~worker.compression.structured.StructuredLevels` loss) and its measured latency. Given
a latency budget for the whole model (``dense_latency / target_speedup``, see
:func:`speedup_budget`) of which ``fixed_latency`` (embeddings, heads, anything not pruned) is
spent anyway, :func:`allocate` picks one option per layer minimising the summed loss subject to
``fixed_latency + sum(latency) <= budget``, by dynamic programming over layers on a grid of
``buckets`` latency steps of ``delta = (budget - fixed_latency) / buckets``.

Discretisation: each option's latency is rounded *up* to whole steps, so the chosen options
never exceed the budget (up to ``1e-9`` of a step per layer, absorbing float noise on exact
multiples). The price is optimality, not feasibility: rounding up costs each layer less than
one step, so the result is at least as good as the exact optimum under the tightened budget
``budget - L * delta`` (L layers; with the default 10,000 steps and 24 layers, 0.24% of the
prunable budget), and never better than the exact optimum under the budget itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

_TOLERANCE = 1e-9  # of one step: latencies a hair above a whole number of steps round down


@dataclass(frozen=True)
class LayerOption:
    kept: int
    loss: float
    latency: float  # seconds


@dataclass(frozen=True)
class Allocation:
    """The chosen option per layer (``choice[l]`` indexes ``options[l]``), its kept counts,
    its summed loss and its total latency (``fixed_latency`` included)."""

    choice: tuple[int, ...]
    kept: tuple[int, ...]
    loss: float
    latency: float
    budget: float


class InfeasibleBudget(ValueError):
    """Even the fastest option of every layer exceeds the latency budget."""


def speedup_budget(dense_latency: float, target_speedup: float) -> float:
    """The whole model's latency budget for ``target_speedup`` over ``dense_latency``."""
    if not (math.isfinite(dense_latency) and dense_latency > 0):
        raise ValueError(f"dense_latency must be finite and > 0, got {dense_latency}")
    if not (math.isfinite(target_speedup) and target_speedup >= 1):
        raise ValueError(f"target_speedup must be finite and >= 1, got {target_speedup}")
    return dense_latency / target_speedup


def _validate(options: Sequence[Sequence[LayerOption]], budget: float, fixed: float) -> None:
    if not options:
        raise ValueError("options must name at least one layer")
    for layer, opts in enumerate(options):
        if not opts:
            raise ValueError(f"options[{layer}] is empty")
        for k, opt in enumerate(opts):
            if not (math.isfinite(opt.latency) and opt.latency >= 0):
                raise ValueError(f"options[{layer}][{k}].latency must be finite and >= 0")
            if not math.isfinite(opt.loss):
                raise ValueError(f"options[{layer}][{k}].loss must be finite")
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be finite and > 0, got {budget}")
    if not (math.isfinite(fixed) and fixed >= 0):
        raise ValueError(f"fixed_latency must be finite and >= 0, got {fixed}")
    fastest = fixed + sum(min(o.latency for o in opts) for opts in options)
    if fastest > budget:
        raise InfeasibleBudget(
            f"latency budget {budget:.6g}s is below the fastest allocation {fastest:.6g}s "
            f"(fixed_latency {fixed:.6g}s plus every layer's fastest option): lower "
            "target_speedup or offer smaller kept counts"
        )


def _fastest(opts: Sequence[LayerOption]) -> int:
    """The index of the fastest option (the least loss among equally fast ones)."""
    return min(range(len(opts)), key=lambda k: (opts[k].latency, opts[k].loss))


def _result(
    options: Sequence[Sequence[LayerOption]], choice: Sequence[int], budget: float, fixed: float
) -> Allocation:
    picked = [options[layer][k] for layer, k in enumerate(choice)]
    return Allocation(
        choice=tuple(choice),
        kept=tuple(o.kept for o in picked),
        loss=math.fsum(o.loss for o in picked),
        latency=fixed + math.fsum(o.latency for o in picked),
        budget=budget,
    )


def allocate(
    options: Sequence[Sequence[LayerOption]],
    budget: float,
    *,
    fixed_latency: float = 0.0,
    buckets: int = 10_000,
) -> Allocation:
    """The option per layer of least summed loss within ``budget`` (seconds, the whole model:
    ``fixed_latency`` plus the chosen options). Raises :class:`InfeasibleBudget` when even the
    fastest options do not fit. See the module docstring for the discretisation bound."""
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    _validate(options, budget, fixed_latency)
    prunable = budget - fixed_latency
    if prunable <= 0:  # only all-zero-latency options fit (checked by _validate)
        zero = [_fastest(o) for o in options]
        return _result(options, zero, budget, fixed_latency)
    step = prunable / buckets
    inf = torch.tensor(math.inf, dtype=torch.float64)
    best = torch.full((buckets + 1,), math.inf, dtype=torch.float64)
    best[0] = 0.0  # best[b]: least loss of the layers so far using exactly b steps
    picks: list[torch.Tensor] = []
    for opts in options:
        new = torch.full_like(best, math.inf)
        arg = torch.full((buckets + 1,), -1, dtype=torch.int64)
        for k, opt in enumerate(opts):
            c = math.ceil(opt.latency / step - _TOLERANCE)
            if c > buckets:
                continue
            cand = torch.cat([inf.expand(c), best[: buckets + 1 - c] + opt.loss])
            better = cand < new
            new = torch.where(better, cand, new)
            arg = torch.where(better, k, arg)
        picks.append(arg)
        best = new
    if not bool(torch.isfinite(best).any()):
        # Rounding up lost the only fits (within one step per layer of the budget): the
        # fastest options fit exactly.
        fastest = [_fastest(o) for o in options]
        return _result(options, fastest, budget, fixed_latency)
    b = int(torch.argmin(best))
    choice: list[int] = []
    for layer in range(len(options) - 1, -1, -1):
        k = int(picks[layer][b])
        choice.append(k)
        b -= math.ceil(options[layer][k].latency / step - _TOLERANCE)
    return _result(options, choice[::-1], budget, fixed_latency)


def uniform_allocation(
    options: Sequence[Sequence[LayerOption]], budget: float, *, fixed_latency: float = 0.0
) -> Allocation:
    """The baseline: the same kept fraction in every layer, the largest that fits. For a
    fraction f each layer keeps its smallest offered count >= f * its largest count; the
    fractions tried are every offered ``kept / largest``, from 1 down (a fit allows 1e-12 of
    the budget for float noise)."""
    _validate(options, budget, fixed_latency)
    tops = [max(o.kept for o in opts) for opts in options]
    fractions = {
        o.kept / top if top else 0.0 for opts, top in zip(options, tops, strict=True) for o in opts
    }
    for f in sorted(fractions, reverse=True):
        choice: list[int] = []
        for opts, top in zip(options, tops, strict=True):
            fits = [(o.kept, o.latency, k) for k, o in enumerate(opts) if o.kept >= f * top - 1e-12]
            choice.append(min(fits)[2])
        result = _result(options, choice, budget, fixed_latency)
        if result.latency <= budget * (1 + 1e-12):  # float noise on an exact fit
            return result
    raise InfeasibleBudget(
        f"no uniform kept fraction fits the latency budget {budget:.6g}s; lower target_speedup"
    )
