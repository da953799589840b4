"""The block Fisher inverse: batched build and inverse vs the sequential Woodbury reference
and dense inverses; views; the joint OBS update; the non-positive-definite fallback."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from worker.compression import BlockFisherInverse, batched_spd_inverse, woodbury_fisher_inverse

CPU = torch.device("cpu")


def dense_blocks(grads: Tensor, block: int, damp: float) -> Tensor:
    """The exact block Fisher (float64) from its definition."""
    m, n = grads.shape
    nb = math.ceil(n / block)
    padded = torch.zeros(m, nb * block, dtype=torch.float64)
    padded[:, :n] = grads.double()
    g = padded.view(m, nb, block)
    f = torch.einsum("mbi,mbj->bij", g, g) / m
    return f + damp * torch.eye(block, dtype=torch.float64)


def rel(a: Tensor, b: Tensor) -> float:
    return float(((a.double() - b.double()).norm(dim=(1, 2)) / b.double().norm(dim=(1, 2))).max())


@pytest.mark.parametrize(("n", "block", "m", "chunk"), [(120, 10, 40, 7), (103, 8, 16, 16)])
def test_batched_equals_woodbury_and_dense_inverse(n: int, block: int, m: int, chunk: int) -> None:
    gen = torch.Generator().manual_seed(0)
    grads = torch.randn(m, n, generator=gen, dtype=torch.float64) * 0.1
    damp = 1e-3
    fisher = BlockFisherInverse(n, block, damp, CPU, dtype=torch.float64)
    for start in range(0, m, chunk):
        fisher.add_grads(grads[start : start + chunk])
    fisher.invert()
    batched = fisher.inverse_blocks()
    woodbury = woodbury_fisher_inverse(grads, block, damp)
    dense = torch.linalg.inv(dense_blocks(grads, block, damp))
    assert rel(batched, dense) < 1e-5
    assert rel(woodbury, dense) < 1e-5
    assert rel(batched, woodbury) < 1e-5


def test_float32_state_matches_dense_inverse() -> None:
    gen = torch.Generator().manual_seed(1)
    grads = torch.randn(64, 500, generator=gen) * 1e-2
    fisher = BlockFisherInverse(500, 50, 1e-5, CPU)
    buffer = fisher.grad_buffer(64)
    buffer[:, :500] = grads
    fisher.add_grads(buffer)
    fisher.invert()
    dense = torch.linalg.inv(dense_blocks(grads, 50, 1e-5))
    assert rel(fisher.inverse_blocks(), dense) < 1e-5


def test_views_diag_blocks_mul() -> None:
    gen = torch.Generator().manual_seed(2)
    grads = torch.randn(30, 64, generator=gen, dtype=torch.float64)
    fisher = BlockFisherInverse(64, 16, 0.1, CPU, dtype=torch.float64)
    fisher.add_grads(grads)
    fisher.invert()
    full = torch.block_diag(*torch.linalg.inv(dense_blocks(grads, 16, 0.1)))
    assert torch.allclose(fisher.diag(), full.diagonal(), rtol=1e-9)
    sub = fisher.diag_blocks(4)
    for g in range(16):
        assert torch.allclose(sub[g], full[4 * g : 4 * g + 4, 4 * g : 4 * g + 4], rtol=1e-9)
    v = torch.randn(64, generator=gen, dtype=torch.float64)
    assert torch.allclose(fisher.mul(v), full @ v, rtol=1e-9)


def test_joint_obs_update_is_the_constrained_minimum() -> None:
    gen = torch.Generator().manual_seed(3)
    grads = torch.randn(40, 24, generator=gen, dtype=torch.float64)
    fisher = BlockFisherInverse(24, 12, 0.05, CPU, dtype=torch.float64)
    fisher.add_grads(grads)
    f = torch.block_diag(*dense_blocks(grads, 12, 0.05))
    fisher.invert()
    w = torch.randn(24, generator=gen, dtype=torch.float64)
    q = torch.zeros(24, dtype=torch.bool)
    q[[1, 4, 5, 13, 20]] = True
    dw = fisher.obs_update(w, q)
    # KKT: minimise 1/2 dw^T F dw subject to dw_Q = -w_Q
    idx = q.nonzero().flatten()
    e = torch.zeros(24, idx.numel(), dtype=torch.float64)
    e[idx, torch.arange(idx.numel())] = 1.0
    kkt = torch.cat(
        [torch.cat([f, e], 1), torch.cat([e.T, torch.zeros(idx.numel(), idx.numel()).double()], 1)]
    )
    rhs = torch.cat([torch.zeros(24, dtype=torch.float64), -w[idx]])
    expected = torch.linalg.solve(kkt, rhs)[:24]
    assert torch.allclose(dw, expected, atol=1e-9)
    assert torch.allclose((w + dw)[q], torch.zeros(5, dtype=torch.float64), atol=1e-9)


def test_mask_decouples_pruned_coordinates() -> None:
    gen = torch.Generator().manual_seed(4)
    grads = torch.randn(20, 10, generator=gen, dtype=torch.float64)
    mask = torch.ones(10, dtype=torch.bool)
    mask[[2, 7]] = False
    fisher = BlockFisherInverse(10, 10, 1e-2, CPU, dtype=torch.float64)
    fisher.add_grads(grads)
    fisher.invert(mask)
    expected = torch.linalg.inv(dense_blocks(grads * mask, 10, 1e-2))[0]
    assert torch.allclose(fisher.inverse_blocks()[0], expected, rtol=1e-9)
    assert float(fisher.inverse_blocks()[0][2, 3].abs()) == 0.0


def test_non_positive_definite_blocks_fall_back_without_crashing() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 8, 8, generator=gen, dtype=torch.float64)
    good = x @ x.transpose(1, 2) + torch.eye(8, dtype=torch.float64)
    batch = good.clone()
    batch[1] = -good[1]  # negative definite
    batch[3] = torch.outer(x[3, 0], x[3, 0])  # rank one: singular
    batch[4, 0, 0] = float("nan")
    inv, failed = batched_spd_inverse(batch)
    assert failed == 3
    assert bool(torch.isfinite(inv).all())
    for i in (0, 2, 5):
        assert torch.allclose(inv[i], torch.linalg.inv(good[i]), rtol=1e-9)


def test_fisher_without_damping_and_few_gradients_does_not_crash() -> None:
    grads = torch.randn(3, 40, generator=torch.Generator().manual_seed(6))
    fisher = BlockFisherInverse(40, 20, 0.0, CPU)
    fisher.add_grads(grads)
    fisher.invert()
    assert fisher.fallback_blocks == 2
    assert bool(torch.isfinite(fisher.inverse_blocks()).all())
    assert bool((fisher.diag() > 0).all())


def _kkt_update(f: Tensor, w: Tensor, removed: list[int]) -> Tensor:
    n, k = w.numel(), len(removed)
    e = torch.zeros(n, k, dtype=torch.float64)
    e[removed, torch.arange(k)] = 1.0
    kkt = torch.zeros(n + k, n + k, dtype=torch.float64)
    kkt[:n, :n], kkt[:n, n:], kkt[n:, :n] = f, e, e.T
    rhs = torch.cat([torch.zeros(n, dtype=torch.float64), -w[removed]])
    return torch.linalg.solve(kkt, rhs)[:n]


@pytest.mark.parametrize("group", [1, 4])
def test_independent_update_is_the_sum_of_unit_updates(group: int) -> None:
    gen = torch.Generator().manual_seed(7)
    grads = torch.randn(40, 24, generator=gen, dtype=torch.float64)
    fisher = BlockFisherInverse(24, 12, 0.05, CPU, dtype=torch.float64)
    fisher.add_grads(grads)
    f = torch.block_diag(*dense_blocks(grads, 12, 0.05))
    fisher.invert()
    w = torch.randn(24, generator=gen, dtype=torch.float64)
    units = [0, 2, 5]  # unit indices (groups of `group` weights)
    q = torch.zeros(24, dtype=torch.bool)
    expected = torch.zeros(24, dtype=torch.float64)
    for u in units:
        removed = list(range(u * group, (u + 1) * group))
        q[removed] = True
        expected += _kkt_update(f, w, removed)
    dw = fisher.obs_update(w, q, joint=False, group=group)
    assert torch.allclose(dw, expected, atol=1e-9)
    joint = fisher.obs_update(w, q, joint=True)
    assert not torch.allclose(joint, expected, atol=1e-6)  # several units share a block


def test_mixed_precision_redoes_only_ill_conditioned_blocks_in_float64() -> None:
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(4, 256, 16, generator=gen, dtype=torch.float64) * 1e-2
    x[1, :, 1] = x[1, :, 0] * (1 + 1e-3) + 1e-3 * x[1, :, 2]  # near-collinear coordinates
    blocks = (x.transpose(1, 2) @ x / 256 + 1e-9 * torch.eye(16, dtype=torch.float64)).float()
    exact = torch.linalg.inv(blocks.double())
    mixed, failed = batched_spd_inverse(blocks, fast_dtype=torch.float32)
    assert failed == 0
    assert mixed.dtype == torch.float32
    assert rel(mixed, exact) < 1e-5
    # The same block through float32 alone loses most of its digits: the redo is what saves it.
    naive = torch.cholesky_inverse(torch.linalg.cholesky(blocks[1:2]))
    assert rel(naive, exact[1:2]) > 1e-3


def test_mixed_and_float64_inverses_agree_on_gradients() -> None:
    grads = torch.randn(64, 500, generator=torch.Generator().manual_seed(9)) * 1e-3
    mask = torch.rand(500, generator=torch.Generator().manual_seed(10)) > 0.3
    out = {}
    for precision in ("mixed", "float64"):
        fisher = BlockFisherInverse(500, 50, 1e-7, CPU)
        fisher.add_grads(grads)
        fisher.invert(mask, precision=precision)
        out[precision] = fisher.inverse_blocks().clone()
    exact = torch.linalg.inv(dense_blocks(grads * mask, 50, 1e-7))
    assert rel(out["float64"], exact) < 1e-5
    assert rel(out["mixed"], exact) < 1e-5
