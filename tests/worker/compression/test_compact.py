"""compact_ffn and compact_heads: emptied feed-forward neurons and attention heads removed
without changing the function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from worker.compression.compact import (
    Activation,
    compact_ffn,
    compact_heads,
    empty_heads,
    empty_neurons,
    head_rows,
)


def _block(bias2: bool = True, seed: int = 0) -> tuple[nn.Linear, nn.Linear]:
    torch.manual_seed(seed)
    fc1, fc2 = nn.Linear(8, 6), nn.Linear(6, 5, bias=bias2)
    with torch.no_grad():
        fc1.bias.uniform_(-2.0, 2.0)  # constant neurons must fold a non-trivial act(b)
    return fc1, fc2


def _run(fc1: nn.Linear, fc2: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return fc2(nn.functional.gelu(fc1(x)))


def test_constant_and_dead_neurons_are_removed_and_the_output_is_unchanged() -> None:
    fc1, fc2 = _block()
    with torch.no_grad():
        fc1.weight[[1, 4]] = 0.0  # constant: gelu(b1) for every input
        fc2.weight[:, 2] = 0.0  # dead: contributes nothing
        fc2.weight[:, 4] = 0.0  # both: counted as constant
    x = torch.randn(7, 3, 8)
    before = _run(fc1, fc2, x)
    w1_before = fc1.weight.clone()
    new1, new2, rep = compact_ffn(fc1, fc2, nn.functional.gelu)
    assert (rep.neurons, rep.constant, rep.dead, rep.kept) == (6, 2, 1, 3)
    assert new1.weight.shape == (3, 8) and new2.weight.shape == (5, 3)
    assert torch.equal(new1.weight, fc1.weight[[0, 3, 5]])
    torch.testing.assert_close(_run(new1, new2, x), before, rtol=0, atol=1e-6)
    assert torch.equal(fc1.weight, w1_before)  # the inputs are left alone
    assert not torch.equal(new2.bias, fc2.bias)  # the constants went into the bias


def test_without_empty_neurons_nothing_changes() -> None:
    fc1, fc2 = _block()
    new1, new2, rep = compact_ffn(fc1, fc2, nn.functional.gelu)
    assert rep.kept == 6 and rep.constant == rep.dead == 0
    assert torch.equal(new1.weight, fc1.weight) and torch.equal(new2.bias, fc2.bias)


def test_output_layer_without_bias_gets_one_for_the_fold() -> None:
    fc1, fc2 = _block(bias2=False)
    with torch.no_grad():
        fc1.weight[0] = 0.0
    x = torch.randn(4, 8)
    new1, new2, _ = compact_ffn(fc1, fc2, nn.functional.gelu)
    assert new2.bias is not None and new1.out_features == 5
    torch.testing.assert_close(_run(new1, new2, x), _run(fc1, fc2, x), rtol=0, atol=1e-6)


def test_a_fully_emptied_block_keeps_one_silent_neuron() -> None:
    fc1, fc2 = _block()
    with torch.no_grad():
        fc1.weight.zero_()
    x = torch.randn(4, 8)
    new1, new2, rep = compact_ffn(fc1, fc2, nn.functional.gelu)
    assert rep.kept == 1 and rep.constant == 6
    assert torch.count_nonzero(new2.weight) == 0
    torch.testing.assert_close(_run(new1, new2, x), _run(fc1, fc2, x), rtol=0, atol=1e-6)


def test_empty_neurons_and_shape_check() -> None:
    fc1, fc2 = _block()
    with torch.no_grad():
        fc1.weight[3] = 0.0
        fc2.weight[:, 3] = 0.0
        fc2.weight[:, 5] = 0.0
    constant, dead = empty_neurons(fc1, fc2)
    assert constant.tolist() == [False, False, False, True, False, False]
    assert dead.tolist() == [False, False, False, False, False, True]
    with pytest.raises(ValueError, match="fc2 takes 5"):
        compact_ffn(fc1, nn.Linear(5, 5), nn.functional.gelu)


def _gated(seed: int = 0) -> tuple[nn.Linear, nn.Linear]:
    torch.manual_seed(seed)
    fc1, fc2 = nn.Linear(8, 12), nn.Linear(6, 5)  # rows 0-5 inputs, 6-11 gates
    with torch.no_grad():
        fc1.bias.uniform_(-2.0, 2.0)
    return fc1, fc2


def _run_gated(
    fc1: nn.Linear, fc2: nn.Linear, x: torch.Tensor, act: Activation = nn.functional.gelu
) -> torch.Tensor:
    u, g = fc1(x).chunk(2, dim=-1)
    out: torch.Tensor = fc2(act(u) * g)
    return out


def test_gated_neurons_are_rows_j_and_n_plus_j() -> None:
    fc1, fc2 = _gated()
    with torch.no_grad():
        fc1.weight[[0, 6]] = 0.0  # input and gate rows: constant gelu(b_0) * b_6
        fc1.weight[8] = 0.0  # gate row and bias of neuron 2: dead
        fc1.bias[8] = 0.0
        fc1.weight[3] = 0.0  # input row and bias of neuron 3, gelu(0) = 0: dead
        fc1.bias[3] = 0.0
        fc1.weight[4] = 0.0  # input row alone: act(b) * g(x) still depends on x, kept
        fc2.weight[:, 5] = 0.0  # output column: dead
    x = torch.randn(7, 8)
    new1, new2, rep = compact_ffn(fc1, fc2, nn.functional.gelu, gated=True)
    assert (rep.neurons, rep.constant, rep.dead, rep.kept) == (6, 1, 3, 2)
    assert torch.equal(new1.weight, fc1.weight[[1, 4, 7, 10]])
    torch.testing.assert_close(_run_gated(new1, new2, x), _run_gated(fc1, fc2, x), rtol=0,
                               atol=1e-6)  # fmt: skip


def test_a_zero_input_row_is_kept_when_act_of_zero_is_not_zero() -> None:
    fc1, fc2 = _gated()

    def shifted(t: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(t) + 1.0

    with torch.no_grad():
        fc1.weight[3] = 0.0
        fc1.bias[3] = 0.0
    constant, dead = empty_neurons(fc1, fc2, shifted, gated=True)
    assert not constant.any() and not dead.any()
    x = torch.randn(4, 8)
    new1, new2, rep = compact_ffn(fc1, fc2, shifted, gated=True)
    assert rep.kept == 6
    torch.testing.assert_close(_run_gated(new1, new2, x, shifted),
                               _run_gated(fc1, fc2, x, shifted), rtol=0, atol=1e-6)  # fmt: skip


def test_a_gated_block_needs_an_even_fc1() -> None:
    with pytest.raises(ValueError, match="even number of rows"):
        compact_ffn(nn.Linear(8, 11), nn.Linear(5, 5), nn.functional.gelu, gated=True)


HEADS, HEAD_DIM, WIDTH = 4, 3, 10


def _attention(
    q: nn.Linear, k: nn.Linear, v: nn.Linear, o: nn.Linear, x: torch.Tensor
) -> torch.Tensor:
    """Multi-head attention over (batch, seq, WIDTH), heads inferred from the projections."""

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(*t.shape[:2], -1, HEAD_DIM).transpose(1, 2)

    qs, ks, vs = split(q(x)), split(k(x)), split(v(x))
    probs = torch.softmax(qs @ ks.transpose(-1, -2) / HEAD_DIM**0.5, dim=-1)
    out: torch.Tensor = o((probs @ vs).transpose(1, 2).reshape(*x.shape[:2], -1))
    return out


def _heads(seed: int = 0) -> list[nn.Linear]:
    torch.manual_seed(seed)
    inner = HEADS * HEAD_DIM
    return [nn.Linear(WIDTH, inner) for _ in range(3)] + [nn.Linear(inner, WIDTH)]


def test_heads_with_zero_output_columns_are_removed_and_the_output_is_unchanged() -> None:
    q, k, v, o = _heads()
    with torch.no_grad():
        o.weight[:, 1 * HEAD_DIM : 2 * HEAD_DIM] = 0.0  # head 1; its q/k/v rows left as they are
        o.weight[:, 3 * HEAD_DIM :] = 0.0  # head 3
        o.weight[:, 0] = 0.0  # one column of head 0 alone: the head stays
    x = torch.randn(2, 5, WIDTH)
    before = _attention(q, k, v, o, x)
    new_o, (nq, nk, nv), rep = compact_heads(o, [(q, 1), (k, 1), (v, 1)], HEAD_DIM)
    assert (rep.heads, rep.kept, rep.live, rep.removed) == (4, (0, 2), 2, (1, 3))
    assert rep.as_dict() == {"heads": 4, "heads_kept": 2, "heads_removed": [1, 3],
                             "heads_in_graph": 2}  # fmt: skip
    assert new_o.weight.shape == (WIDTH, 2 * HEAD_DIM) and nq.weight.shape == (6, WIDTH)
    assert torch.equal(nk.weight, k.weight[[0, 1, 2, 6, 7, 8]])
    assert torch.equal(nv.bias, v.bias[[0, 1, 2, 6, 7, 8]])
    assert torch.equal(new_o.bias, o.bias)
    torch.testing.assert_close(_attention(nq, nk, nv, new_o, x), before, rtol=0, atol=1e-6)
    assert o.in_features == 12 and q.out_features == 12  # the modules given are left alone


def test_a_fused_projection_loses_the_head_in_each_third() -> None:
    q, k, v, o = _heads()
    qkv = nn.Linear(WIDTH, 3 * HEADS * HEAD_DIM)
    with torch.no_grad():
        qkv.weight.copy_(torch.cat([q.weight, k.weight, v.weight]))
        qkv.bias.copy_(torch.cat([q.bias, k.bias, v.bias]))
        o.weight[:, :HEAD_DIM] = 0.0  # head 0
    _, (fused,), rep = compact_heads(o, [(qkv, 3)], HEAD_DIM)
    assert rep.kept == (1, 2, 3)
    _, (nq, nk, nv), _ = compact_heads(o, [(q, 1), (k, 1), (v, 1)], HEAD_DIM)
    assert torch.equal(fused.weight, torch.cat([nq.weight, nk.weight, nv.weight]))
    assert torch.equal(fused.bias, torch.cat([nq.bias, nk.bias, nv.bias]))


def test_a_layer_without_heads_keeps_one_silent_head() -> None:
    q, k, v, o = _heads()
    with torch.no_grad():
        o.weight.zero_()
    x = torch.randn(2, 5, WIDTH)
    new_o, (nq, nk, nv), rep = compact_heads(o, [(q, 1), (k, 1), (v, 1)], HEAD_DIM)
    assert (rep.kept, rep.live, rep.removed) == ((0,), 0, (0, 1, 2, 3))
    assert rep.as_dict()["heads_in_graph"] == 1 and new_o.in_features == HEAD_DIM
    assert torch.count_nonzero(new_o.weight) == 0
    torch.testing.assert_close(_attention(nq, nk, nv, new_o, x), o.bias.expand(2, 5, -1),
                               rtol=0, atol=0)  # fmt: skip


def test_empty_heads_and_the_shape_checks() -> None:
    q, *_, o = _heads()
    with torch.no_grad():
        o.weight[:, 2 * HEAD_DIM : 3 * HEAD_DIM] = 0.0
    assert empty_heads(o, HEAD_DIM).tolist() == [False, False, True, False]
    assert head_rows(torch.tensor([0, 2]), HEAD_DIM, HEADS, 2).tolist() == [
        0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19, 20,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not a multiple of the head size 5"):
        empty_heads(o, 5)
    with pytest.raises(ValueError, match="expected 3 x 4 heads x 3"):
        compact_heads(o, [(q, 3)], HEAD_DIM)
