"""The latency table: the exported blocks compute the torch blocks, every count is covered,
interpolation and monotonicity, the JSON cache, and the options handed to allocation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from worker.compression.allocation import allocate
from worker.pipelines.export import open_session
from worker.pipelines.latency_table import (
    BlockLatency,
    LatencyKey,
    LatencyTable,
    block_inputs,
    block_module,
    cache_path,
    cached_latency_table,
    default_counts,
    export_block,
    layer_options,
    measure_latency_table,
)

TINY = {"hidden": 32, "heads": 4, "ffn": 64, "batch": 1, "seq_len": 16, "threads": 1}
FAST = {"rounds": 2, "iters": 2, "warmup": 1}


def tiny_key(**overrides: object) -> LatencyKey:
    fields = {**TINY, "gated": False, "activation": "gelu", **overrides}
    return LatencyKey.for_host(**fields)


@pytest.fixture(scope="module")
def table() -> LatencyTable:
    return measure_latency_table(tiny_key(), **FAST)


def test_the_table_covers_every_count_and_kept_zero_costs_nothing(table: LatencyTable) -> None:
    assert table.attention.counts == (0, 1, 2, 3, 4)
    assert table.ffn.counts == default_counts(64) == (0, 1, *range(4, 65, 4))
    for kind, width in (("attention", 4), ("ffn", 64)):
        block = table.block(kind)
        assert block.raw[0] == 0.0 and table.latency(kind, 0) == 0.0
        assert all(v > 0 for v in block.raw[1:])
        values = [table.latency(kind, k) for k in range(width + 1)]
        assert values == sorted(values)
    assert table.rest > 0
    full = table.attention.monotone[-1] + table.ffn.monotone[-1] + table.rest
    assert table.dense_layer == full


def test_interpolation_is_exact_at_grid_points_and_linear_between() -> None:
    block = BlockLatency((0, 2, 6, 10), (0.0, 4.0, 3.0, 8.0))
    assert block.monotone == (0.0, 4.0, 4.0, 8.0)  # the raw 3.0 lifted to 4.0
    assert [block.at(c) for c in block.counts] == [0.0, 4.0, 4.0, 8.0]
    assert block.at(1) == 2.0 and block.at(4) == 4.0 and block.at(8) == 6.0
    values = [block.at(k) for k in range(11)]
    assert values == sorted(values)
    with pytest.raises(ValueError, match="kept must be in"):
        block.at(11)


@pytest.mark.parametrize("gated", [False, True])
def test_the_exported_block_computes_the_torch_block(tmp_path: Path, gated: bool) -> None:
    key = tiny_key(batch=2, gated=gated, activation="silu" if gated else "gelu")
    jobs = [("attention", k) for k in (1, 2, 4)] + [("ffn", n) for n in (1, 4, 64)]
    for kind, kept in [*jobs, ("rest", 0)]:
        torch.manual_seed(kept)
        module = block_module(key, kind, kept)
        inputs = block_inputs(key, kind, seed=1)
        if kind == "attention":  # the second row's last 5 positions masked out
            inputs["mask"][1, ..., -5:] = torch.finfo(torch.float32).min
        path = export_block(module, inputs, tmp_path / f"{kind}{kept}.onnx", int8=False)
        session = open_session(path, threads=1)
        (got,) = session.run(None, {n: t.numpy() for n, t in inputs.items()})
        with torch.no_grad():
            want = module(*inputs.values()).numpy()
        assert got.shape == (2, 16, 32)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{kind} {kept}")
        if kind == "attention":  # the mask is read: masked tokens change no other output
            for pos, seen in ((-1, False), (0, True)):
                x = inputs["x"].clone()
                x[1, pos] += 1.0
                (again,) = session.run(None, {"x": x.numpy(), "mask": inputs["mask"].numpy()})
                assert np.allclose(again[1, 1:-5], got[1, 1:-5], atol=1e-6) != seen


def test_an_int8_table_times_the_quantized_blocks(tmp_path: Path) -> None:
    key = tiny_key(precision="int8")
    inputs = block_inputs(key, "ffn", seed=1)
    module = block_module(key, "ffn", 64)
    path = export_block(module, inputs, tmp_path / "ffn.onnx", int8=True)
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(path)).graph.node}
    (got,) = open_session(path, threads=1).run(None, {"x": inputs["x"].numpy()})
    with torch.no_grad():
        want = module(inputs["x"]).numpy()
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()  # int8 rounding only
    table = measure_latency_table(key, counts_attention=[4], counts_ffn=[64], **FAST)
    assert table.key.precision == "int8" and table.ffn.raw[-1] > 0


def test_a_grid_must_reach_the_full_width() -> None:
    with pytest.raises(ValueError, match="counts_ffn"):
        measure_latency_table(tiny_key(), counts_attention=[4], counts_ffn=[0, 32], **FAST)
    with pytest.raises(ValueError, match=r"LatencyKey\.hidden"):
        tiny_key(hidden=30)
    with pytest.raises(ValueError, match="activation 'nope'"):
        block_module(tiny_key(activation="nope"), "ffn", 4)


def test_the_cache_round_trips_and_a_different_key_misses(tmp_path: Path) -> None:
    key = tiny_key()
    grids = {"counts_attention": [4], "counts_ffn": [32, 64]}
    first = cached_latency_table(key, tmp_path, **grids, **FAST)
    path = cache_path(key, tmp_path)
    stamp = path.stat().st_mtime_ns
    assert LatencyTable.from_json(json.loads(path.read_text())) == first
    again = cached_latency_table(key, tmp_path, **grids, **FAST)
    assert again == first and path.stat().st_mtime_ns == stamp  # read, not measured
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind

    other = tiny_key(threads=2)
    assert cache_path(other, tmp_path) != path
    measured = cached_latency_table(other, tmp_path, **grids, **FAST)
    assert measured.key == other and measured.ffn.raw != first.ffn.raw

    # a file under this key's name holding another key's table is not reused
    third = tiny_key(seq_len=8)
    cache_path(third, tmp_path).write_text(path.read_text())
    assert cached_latency_table(third, tmp_path, **grids, **FAST).key == third
    # nor one that lacks a count asked for
    wider = cached_latency_table(key, tmp_path, counts_attention=[2, 4], counts_ffn=[64], **FAST)
    assert wider.attention.counts == (0, 2, 4)


def test_layer_options_feed_the_allocation(table: LatencyTable) -> None:
    heads = [torch.linspace(1.0, 0.0, 5).tolist(), [4.0, 1.0, 0.5, 0.1, 0.0]]
    neurons = [torch.linspace(2.0, 0.0, 65).tolist(), torch.linspace(0.5, 0.0, 65).tolist()]
    options = layer_options(table, heads, neurons, neuron_step=8)
    assert [o.kept for o in options.attention[1]] == [0, 1, 2, 3, 4]
    assert [o.kept for o in options.ffn[0]] == list(range(0, 65, 8))
    assert options.ffn[0][2].loss == pytest.approx(2.0 - 2.0 * 16 / 64)
    assert options.ffn[0][2].latency == table.latency("ffn", 16)
    dense = sum(max(o.latency for o in opts) for opts in options.interleaved())
    result = allocate(options.interleaved(), dense / 1.5)
    kept_heads, kept_neurons = options.split(result)
    assert len(kept_heads) == len(kept_neurons) == 2
    assert result.latency <= dense / 1.5 and math.isfinite(result.loss)
    with pytest.raises(ValueError, match="attention losses\\[0\\] must hold"):
        layer_options(table, [[0.0] * 7], [[0.0] * 65])
    with pytest.raises(ValueError, match="levels_loss_heads has 1 layers"):
        layer_options(table, [[0.0] * 5], [])


def test_a_full_width_ffn_is_slower_than_a_sixteenth_of_it() -> None:
    key = LatencyKey.for_host(hidden=256, heads=4, ffn=1024, gated=False, activation="gelu",
                              batch=1, seq_len=128, threads=1)  # fmt: skip
    table = measure_latency_table(key, counts_attention=[4], counts_ffn=[64, 1024], rounds=5,
                                  iters=3)  # fmt: skip
    assert table.latency("ffn", 1024) > 1.5 * table.latency("ffn", 64)
