"""Latency-aware allocation: the budget is met, the DP equals brute force (exactly on a grid,
within its stated bound otherwise), beats the uniform baseline; infeasible budgets raise."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

import pytest

from worker.compression.allocation import (
    Allocation,
    InfeasibleBudget,
    LayerOption,
    allocate,
    speedup_budget,
    uniform_allocation,
)

Table = Sequence[Sequence[LayerOption]]


def brute_force(options: Table, budget: float, fixed: float = 0.0) -> Allocation | None:
    """The exact optimum by enumeration."""
    best: Allocation | None = None
    for choice in itertools.product(*(range(len(o)) for o in options)):
        picked = [options[layer][k] for layer, k in enumerate(choice)]
        latency = fixed + math.fsum(o.latency for o in picked)
        loss = math.fsum(o.loss for o in picked)
        if latency <= budget and (best is None or loss < best.loss):
            kept = tuple(o.kept for o in picked)
            best = Allocation(tuple(choice), kept, loss, latency, budget)
    return best


def hand_table() -> list[list[LayerOption]]:
    """Four layers of 0..4 kept structures: latency linear in kept (different costs per
    structure), loss convex with very different sensitivities."""
    per_structure = [1.0, 1.0, 2.0, 0.5]
    sensitivity = [10.0, 0.5, 3.0, 0.1]
    return [
        [LayerOption(kept=k, loss=s * (4 - k) ** 2, latency=c * k) for k in range(5)]
        for c, s in zip(per_structure, sensitivity, strict=True)
    ]


def test_hand_table_meets_the_budget_and_beats_uniform() -> None:
    table = hand_table()
    fixed = 2.0
    dense = fixed + sum(o[-1].latency for o in table)  # 20.0
    budget = speedup_budget(dense, 2.0)
    result = allocate(table, budget, fixed_latency=fixed)
    uniform = uniform_allocation(table, budget, fixed_latency=fixed)
    assert result.latency <= budget
    assert uniform.latency <= budget
    assert result.loss < uniform.loss
    exact = brute_force(table, budget, fixed)
    assert exact is not None
    assert result.loss == pytest.approx(exact.loss)
    assert result.kept == tuple(table[i][k].kept for i, k in enumerate(result.choice))
    # The sensitive layer keeps more than the insensitive ones.
    assert result.kept[0] > result.kept[1]
    assert result.kept[0] > result.kept[3]


@pytest.mark.parametrize("budget", [3.0, 7.0, 11.0, 15.0, 20.0])
def test_grid_aligned_latencies_equal_brute_force(budget: float) -> None:
    """Integer latencies and a step of exactly 1: no rounding, so the DP is exact."""
    table = hand_table()
    result = allocate(table, budget, fixed_latency=2.0, buckets=int(budget - 2.0))
    exact = brute_force(table, budget, 2.0)
    assert exact is not None
    assert result.loss == pytest.approx(exact.loss)
    assert result.latency <= budget


@pytest.mark.parametrize("seed", range(6))
def test_random_tables_within_the_stated_bound(seed: int) -> None:
    rng = random.Random(seed)
    table = [
        [LayerOption(k, rng.uniform(0, 5), rng.uniform(0, 3)) for k in range(4)] for _ in range(3)
    ]
    fixed, buckets = 0.5, 50
    budget = fixed + rng.uniform(2.0, 6.0)
    result = allocate(table, budget, fixed_latency=fixed, buckets=buckets)
    assert result.latency <= budget
    exact = brute_force(table, budget, fixed)
    assert exact is not None
    assert result.loss >= exact.loss - 1e-12
    # At least as good as the exact optimum under the budget tightened by one step per layer.
    tightened = brute_force(table, budget - len(table) * (budget - fixed) / buckets, fixed)
    if tightened is not None:
        assert result.loss <= tightened.loss + 1e-12
    fine = allocate(table, budget, fixed_latency=fixed, buckets=1_000_000)
    assert fine.loss <= result.loss + 1e-12


def test_rounding_up_never_loses_an_exact_fit() -> None:
    """Two layers of 0.5 s fill a 1 s budget exactly; three steps of 1/3 s cannot hold them
    after rounding up, so the fastest options (which fit) are returned."""
    table = [[LayerOption(1, 0.0, 0.5)], [LayerOption(1, 0.0, 0.5)]]
    result = allocate(table, 1.0, buckets=3)
    assert result.choice == (0, 0)
    assert result.latency == pytest.approx(1.0)


def test_infeasible_budget_raises() -> None:
    table = hand_table()
    with pytest.raises(InfeasibleBudget, match="fastest allocation"):
        allocate(table, 1.9, fixed_latency=2.0)
    table[0] = table[0][1:]  # layer 0 cannot go below 1 structure (1 s)
    with pytest.raises(InfeasibleBudget, match="fastest allocation"):
        allocate(table, 2.5, fixed_latency=2.0)
    with pytest.raises(InfeasibleBudget):
        uniform_allocation(table, 2.5, fixed_latency=2.0)
    assert allocate(table, 3.0, fixed_latency=2.0).kept[0] == 1


def test_zero_prunable_budget_takes_the_free_options() -> None:
    table = [[LayerOption(0, 5.0, 0.0), LayerOption(1, 1.0, 1.0), LayerOption(0, 2.0, 0.0)]]
    result = allocate(table, 2.0, fixed_latency=2.0)
    assert result.choice == (2,)


def test_bad_input_names_the_field() -> None:
    table = hand_table()
    with pytest.raises(ValueError, match=r"options\[1\]\[2\]\.latency"):
        bad = [list(o) for o in table]
        bad[1][2] = LayerOption(2, 1.0, -1.0)
        allocate(bad, 10.0)
    with pytest.raises(ValueError, match=r"options\[0\]\[0\]\.loss"):
        allocate([[LayerOption(0, math.nan, 0.0)]], 10.0)
    with pytest.raises(ValueError, match=r"options\[0\] is empty"):
        allocate([[]], 10.0)
    with pytest.raises(ValueError, match="buckets"):
        allocate(table, 10.0, buckets=0)
    with pytest.raises(ValueError, match="fixed_latency"):
        allocate(table, 10.0, fixed_latency=-1.0)
    with pytest.raises(ValueError, match="budget"):
        allocate(table, math.inf)
    with pytest.raises(ValueError, match="target_speedup"):
        speedup_budget(1.0, 0.5)
    with pytest.raises(ValueError, match="dense_latency"):
        speedup_budget(0.0, 2.0)
    assert speedup_budget(10.0, 2.0) == 5.0


def test_uniform_keeps_one_fraction() -> None:
    table = [
        [LayerOption(k, float(12 - k), k / 8) for k in range(13)],  # heads
        [LayerOption(k, float(1536 - k) / 128, k / 1024) for k in range(0, 1537, 128)],
    ]
    budget = speedup_budget(12 / 8 + 1536 / 1024, 2.0)
    result = uniform_allocation(table, budget)
    assert result.kept == (6, 768)
    assert result.latency <= budget
    dp = allocate(table, budget)
    assert dp.latency <= budget
    assert dp.loss <= result.loss
