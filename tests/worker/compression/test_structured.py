"""Structured OBS against brute-force constrained least squares: the single-structure update
and saliency, the greedy levels, the recomputed weights, dead inputs, the bookkeeping."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from worker.compression.structured import StructuredOBS, remove_columns, structure_saliencies

CPU = torch.device("cpu")
F64 = torch.float64


def inputs(n: int, features: int, seed: int) -> Tensor:
    """Correlated inputs with a nonzero mean (so the bias update matters)."""
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(features, features, generator=gen, dtype=F64)
    return torch.randn(n, features, generator=gen, dtype=F64) @ mix * 0.5 + 0.3


def refit(
    w: Tensor, b: Tensor | None, x: Tensor, lam: float, cols: Tensor
) -> tuple[Tensor, Tensor | None, float]:
    """min over W' (and b') of ||X W^T + b - X W'^T - b'||^2 + lam ||(W, b) - (W', b')||^2
    with W' zero outside ``cols``, by lstsq on the ridge-augmented system."""
    n, features = x.shape
    if b is not None:
        x = torch.cat([x, torch.ones(n, 1, dtype=F64)], 1)
        w = torch.cat([w, b[:, None]], 1)
        cols = torch.cat([cols, torch.tensor([features])])
    aug = torch.cat([x, lam**0.5 * torch.eye(x.shape[1], dtype=F64)])
    target = aug @ w.T
    design = aug[:, cols]
    if cols.numel() == 0:
        return torch.zeros(w.shape[0], 0, dtype=F64), None, float(target.square().sum())
    v = torch.linalg.lstsq(design, target).solution.T
    loss = float((design @ v.T - target).square().sum())
    if b is not None:
        return v[:, :-1], v[:, -1], loss
    return v, None, loss


def group_cols(groups: Tensor | list[int], size: int) -> Tensor:
    g = torch.as_tensor(groups, dtype=torch.int64)
    return (g[:, None] * size + torch.arange(size)).flatten()


def damping(x: Tensor, damp: float) -> float:
    return damp * float((x.T @ x).diagonal().mean())


@pytest.mark.parametrize(
    ("out", "features", "size", "damp"),
    [(6, 8, 2, 0.0), (6, 8, 2, 0.01), (6, 8, 1, 0.1), (20, 48, 4, 0.05)],
)
def test_one_removal_is_the_constrained_least_squares_minimum(
    out: int, features: int, size: int, damp: float
) -> None:
    x = inputs(60, features, seed=features)
    w = torch.randn(out, features, generator=torch.Generator().manual_seed(1), dtype=F64)
    lam = damping(x, damp)
    h = x.T @ x + lam * torch.eye(features, dtype=F64)
    hinv = torch.linalg.inv(h)
    groups = features // size
    saliency = structure_saliencies(w, hinv, groups, size)
    for q in range(groups):
        rest = torch.tensor([c for c in range(features) if c // size != q])
        ref_w, _, ref_loss = refit(w, None, x, lam, rest)
        new_w, new_h = w.clone(), hinv.clone()
        loss = remove_columns(new_w, new_h, group_cols([q], size))
        assert torch.allclose(new_w[:, rest], ref_w, rtol=1e-7, atol=1e-9)
        assert bool((new_w[:, group_cols([q], size)] == 0).all())
        assert loss == pytest.approx(ref_loss, rel=1e-7)
        assert float(saliency[q]) == pytest.approx(ref_loss, rel=1e-7)
        # The downdated inverse is the inverse of H on the remaining columns.
        expect = torch.linalg.inv(h[rest][:, rest])
        assert torch.allclose(new_h[rest][:, rest], expect, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(("size", "bias"), [(2, True), (1, True), (4, False)])
def test_levels_are_greedy_brute_force_refits(size: int, bias: bool) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(8, 6, bias=bias).double()
    x = inputs(40, 8, seed=2)
    obs = StructuredOBS(layer.weight, size, damp=0.01, device=CPU, bias=layer.bias)
    obs.add_batch(x)
    levels = obs.prune_levels()
    w, b = layer.weight.detach(), None if layer.bias is None else layer.bias.detach()
    lam = obs.damping
    assert lam == pytest.approx(damping(x, 0.01))
    groups = 8 // size
    removed: list[int] = []
    assert float(levels.loss[groups]) == 0.0
    for step in range(groups):
        trials = {
            q: refit(w, b, x, lam, group_cols(sorted(set(range(groups)) - {*removed, q}), size))[2]
            for q in range(groups)
            if q not in removed
        }
        best = min(trials, key=trials.__getitem__)
        assert int(levels.order[step]) == best
        assert float(levels.loss[groups - step - 1]) == pytest.approx(trials[best], rel=1e-7)
        removed.append(best)
    assert bool((levels.loss[:-1] >= levels.loss[1:]).all())


@pytest.mark.parametrize(("out", "features", "size"), [(6, 8, 2), (24, 64, 8), (32, 96, 1)])
def test_weight_at_is_the_refit_and_the_sequential_updates(
    out: int, features: int, size: int
) -> None:
    gen = torch.Generator().manual_seed(out)
    w = torch.randn(out, features, generator=gen, dtype=F64)
    b = torch.randn(out, generator=gen, dtype=F64)
    x = inputs(3 * features, features, seed=out)
    obs = StructuredOBS(w, size, damp=0.02, device=CPU, bias=b)
    obs.add_batch(x)
    levels = obs.prune_levels()
    groups = features // size
    assert bool((levels.loss[:-1] >= levels.loss[1:]).all())
    # Sequential OBS steps in the recorded order (on the bias-augmented problem).
    aug = torch.cat([x, torch.ones(x.shape[0], 1, dtype=F64)], 1)
    h = aug.T @ aug
    h.diagonal().add_(obs.damping)
    seq_w, seq_h = torch.cat([w, b[:, None]], 1), torch.linalg.inv(h)
    for kept in range(groups, -1, -1):
        if kept < groups:
            q = int(levels.order[groups - kept - 1])
            remove_columns(seq_w, seq_h, group_cols([q], size))
        at = obs.weight_at(kept)
        assert at.bias is not None
        assert torch.equal(at.groups, levels.kept_groups(kept))
        assert torch.equal(at.columns, group_cols(at.groups, size))
        ref_w, ref_b, ref_loss = refit(w, b, x, obs.damping, at.columns)
        assert torch.allclose(at.weight, ref_w, rtol=1e-6, atol=1e-8)
        assert torch.allclose(at.bias, ref_b if ref_b is not None else b, rtol=1e-6, atol=1e-8)
        assert float(levels.loss[kept]) == pytest.approx(ref_loss, rel=1e-6, abs=1e-9)
        assert torch.allclose(seq_w[:, at.columns], at.weight, rtol=1e-6, atol=1e-8)
        assert torch.allclose(seq_w[:, -1], at.bias, rtol=1e-6, atol=1e-8)
        masked = obs.weight_at(kept, compact=False)
        assert torch.equal(masked.weight[:, at.columns], at.weight)
        assert float(masked.weight.abs().sum()) == pytest.approx(float(at.weight.abs().sum()))
        out_masked = x @ masked.weight.T + at.bias
        assert torch.allclose(out_masked, x[:, at.columns] @ at.weight.T + at.bias)


def test_dead_inputs_cost_nothing_and_go_first() -> None:
    x = inputs(50, 12, seed=3)
    x[:, 6:9] = 0.0  # group 2 of size 3 is dead
    x[:, 1] = 0.0  # one dead column inside group 0
    w = torch.randn(5, 12, generator=torch.Generator().manual_seed(4), dtype=F64)
    obs = StructuredOBS(w, 3, damp=0.01, device=CPU)
    obs.add_batch(x)
    levels = obs.prune_levels()
    assert int(levels.order[0]) == 2
    assert float(levels.loss[3]) == 0.0
    dense = obs.weight_at(4)
    assert bool((dense.weight[:, [1, 6, 7, 8]] == 0).all())
    assert torch.allclose(x @ dense.weight.T, x @ w.T)
    assert bool((levels.loss[:-1] >= levels.loss[1:]).all())


def test_batches_accumulate_and_losses_normalise() -> None:
    layer = nn.Linear(16, 4)
    x = inputs(30, 16, seed=5).float().reshape(3, 10, 16)
    one = StructuredOBS(layer.weight, 4, device=CPU, bias=layer.bias)
    one.add_batch(x)
    split = StructuredOBS(layer.weight, 4, device=CPU, bias=layer.bias)
    split.add_batch(x[:1])
    split.add_batch(x[1:])
    a, b = one.prune_levels(), split.prune_levels()
    assert a.samples == b.samples == 30
    assert torch.equal(a.order, b.order)
    assert torch.allclose(a.loss, b.loss, rtol=1e-10)
    with torch.no_grad():
        energy = layer(x).double().square().sum()
    assert a.output_energy == pytest.approx(float(energy), rel=1e-5)
    assert torch.allclose(a.per_sample(), a.loss / 30)
    assert torch.allclose(a.relative(), a.loss / a.output_energy)
    one.free()
    with pytest.raises(RuntimeError, match="freed"):
        one.weight_at(2)
    assert one.levels is a


def test_bad_input_is_refused() -> None:
    w = torch.randn(3, 8)
    with pytest.raises(ValueError, match="group_size"):
        StructuredOBS(w, 3, device=CPU)
    with pytest.raises(ValueError, match="weight"):
        StructuredOBS(w[0], 1, device=CPU)
    with pytest.raises(ValueError, match="bias"):
        StructuredOBS(w, 2, device=CPU, bias=torch.zeros(4))
    with pytest.raises(ValueError, match="damp"):
        StructuredOBS(w, 2, device=CPU, damp=-1.0)
    obs = StructuredOBS(w, 2, damp=0.0, device=CPU)
    with pytest.raises(RuntimeError, match="add_batch"):
        obs.prune_levels()
    with pytest.raises(ValueError, match="in_features"):
        obs.add_batch(torch.randn(4, 7))
    obs.add_batch(torch.randn(4, 8, dtype=F64))  # 4 samples, 8 inputs, no damping
    with pytest.raises(ValueError, match="singular"):
        obs.prune_levels()
    ok = StructuredOBS(w, 2, device=CPU)
    ok.add_batch(torch.randn(4, 8))
    ok.prune_levels()
    with pytest.raises(RuntimeError, match="after prune_levels"):
        ok.add_batch(torch.randn(4, 8))
    with pytest.raises(ValueError, match="kept"):
        ok.weight_at(5)
