"""Head compaction on every family (compact_structures): heads whose output-projection columns
are zero leave the model, whose outputs, in PyTorch and in the exported ONNX graph at shapes
other than the traced ones, stay those of the uncompacted model; the parameter count drops by
exactly the removed rows and columns; the export stage reports the heads kept per layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.schemas.job_spec import DatasetSpec
from tests.factories.encoder_configs import FAMILIES
from tests.factories.encoders import tokenizer_for
from tests.factories.tiny_bert import sentiment_rows
from tests.worker.pipelines.family_models import first_output, random_inputs, task_model
from worker.pipelines import export as ex
from worker.pipelines.architecture import (
    architecture_of,
    attribute,
    layer_list,
    uses_token_type_ids,
)
from worker.pipelines.compaction import compact_structures
from worker.pipelines.data import Example
from worker.pipelines.export_stage import run_export
from worker.pipelines.inference import EvalSet
from worker.pipelines.structured_calibrate import LayerStructure, layer_structures
from worker.pipelines.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

HEADS = 4  # tests.factories.encoder_configs.TINY
# DeBERTa with separate position projections (pos_key_proj, pos_query_proj) besides the shared
CASES: list[tuple[str, dict[str, Any]]] = [(f, {}) for f in FAMILIES] + [
    ("deberta-v2", {"share_att_key": False})
]
IDS = [f if not o else f"{f}-separate-pos" for f, o in CASES]


def _with_biases(model: Any) -> Any:
    """Biases at random where the family has them, so removed rows' biases matter."""
    with torch.no_grad():
        for s in layer_structures(model):
            for linear in (s.output, *(h.linear for h in s.head_inputs)):
                if linear.bias is not None:
                    linear.bias.uniform_(-0.5, 0.5)
    return model


def _remove(model: Any, plan: dict[int, list[int]], *, inputs: bool = True) -> None:
    """Zero the heads' output columns and (when `inputs`, as the structured stage does) their
    rows of every head-carrying input projection, in each of its blocks, and biases."""
    structures = layer_structures(model)
    with torch.no_grad():
        for index, heads in plan.items():
            s = structures[index]
            d = s.head_dim
            for h in heads:
                s.output.weight[:, h * d : (h + 1) * d] = 0.0
                for inp in s.head_inputs if inputs else ():
                    for part in range(inp.parts):
                        rows = slice(part * HEADS * d + h * d, part * HEADS * d + (h + 1) * d)
                        inp.linear.weight[rows] = 0.0
                        if inp.linear.bias is not None:
                            inp.linear.bias[rows] = 0.0


def _head_parameters(s: LayerStructure) -> int:
    """The parameters one head of the layer holds: its output columns and its input rows."""
    d = s.head_dim
    rows = sum(
        h.parts * d * (h.linear.in_features + (h.linear.bias is not None)) for h in s.head_inputs
    )
    return s.output.out_features * d + rows


def _count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _onnx_matches(small: Any, model: Any, family: str, tmp_path: Path) -> None:
    path = ex.export_onnx(small, tokenizer_for(family), tmp_path / "m.onnx", max_length=16)
    session = ex.open_session(path, threads=1)
    for batch, length in ((3, 40), (1, 7)):  # traced at 2 x 16
        inputs = random_inputs(model, batch, length, seed=length, types=uses_token_type_ids(model))
        got = torch.from_numpy(session.run(None, ex.feed_of(session, inputs))[0])
        torch.testing.assert_close(got, first_output(model, inputs), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("family", "overrides", "plan"),
    [(f, o, p) for f, o in CASES for p in ({0: [1], 1: [0, 3]}, {0: [0, 1, 2, 3], 1: [2]})],
    ids=[f"{i}-{k}" for i in IDS for k in ("some", "all-in-layer-0")],
)
def test_removed_heads_leave_the_graph_exactly(
    family: str, overrides: dict[str, Any], plan: dict[int, list[int]], tmp_path: Path
) -> None:
    model = _with_biases(task_model(family, **overrides))
    _remove(model, plan)
    before = [_head_parameters(s) for s in layer_structures(model)]
    small, summary = compact_structures(model)
    inputs = random_inputs(model, 3, 20, types=uses_token_type_ids(model))
    torch.testing.assert_close(
        first_output(small, inputs), first_output(model, inputs), rtol=0, atol=1e-5
    )
    kept = [HEADS - len(plan[i]) for i in range(2)]
    in_graph = [max(k, 1) for k in kept]  # a layer without heads keeps one silent head
    assert summary["applied"] is True and summary["heads_per_layer"] == kept
    assert summary["attention_heads"] == 2 * HEADS
    assert summary["attention_heads_kept"] == sum(kept)
    layers = summary["layers"]
    assert [x["heads_removed"] for x in layers] == [plan[0], plan[1]]
    assert [x["heads_in_graph"] for x in layers] == in_graph
    assert "prune_heads" in summary["pytorch_model"]
    removed = sum((HEADS - g) * p for g, p in zip(in_graph, before, strict=True))
    assert _count(model) - _count(small) == removed
    arch = architecture_of(small)
    d = layer_structures(model)[0].head_dim
    for layer, g in zip(layer_list(small)[2], in_graph, strict=True):
        assert attribute(layer, arch.attention.output).in_features == g * d
        module = attribute(layer, arch.attention.module or "")
        if arch.attention.count is not None:
            assert getattr(module, arch.attention.count) == g
        if arch.attention.width is not None:
            assert getattr(module, arch.attention.width) == g * d
    assert layer_structures(model)[0].heads == HEADS  # the model itself keeps its shapes
    _onnx_matches(small, model, family, tmp_path)


@pytest.mark.parametrize("family", ["bert", "mpnet", "modernbert"])
def test_only_zero_output_columns_suffice_and_a_second_compaction_narrows_further(
    family: str,
) -> None:
    """The query/key/value rows of a head with zero output columns need not be zero; a
    compacted model compacted again (MPNet: its shared position bias sliced twice) stays
    exact."""
    model = _with_biases(task_model(family))
    _remove(model, {0: [2], 1: [1]}, inputs=False)
    once, first = compact_structures(model)
    assert first["heads_per_layer"] == [3, 3]
    _remove(model, {0: [0], 1: [3]})
    structures = layer_structures(once)
    with torch.no_grad():  # the same heads in the compacted copy: 0 is still 0; 3 is now 2
        d = structures[0].head_dim
        structures[0].output.weight[:, :d] = 0.0
        structures[1].output.weight[:, 2 * d : 3 * d] = 0.0
    twice, second = compact_structures(once)
    assert second["heads_per_layer"] == [2, 2]
    assert [x["heads_removed"] for x in second["layers"]] == [[0], [2]]  # of the copy's heads
    inputs = random_inputs(model, 2, 24)
    torch.testing.assert_close(
        first_output(twice, inputs), first_output(model, inputs), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_a_dense_model_keeps_every_head_and_the_table_names_its_attributes(family: str) -> None:
    model = task_model(family)
    same, summary = compact_structures(model)
    assert same is model and summary["applied"] is False
    assert summary["heads_per_layer"] == [HEADS, HEADS] and "heads_reason" not in summary
    arch = architecture_of(model)
    att = arch.attention
    for layer in layer_list(model)[2]:
        module = attribute(layer, att.module or "")
        assert isinstance(module, torch.nn.Module)
        if att.count is not None:
            assert getattr(module, att.count) == HEADS
        if att.width is not None:
            assert getattr(module, att.width) == attribute(layer, att.output).in_features


@pytest.mark.parametrize("family", ["deberta-v2", "mpnet"])
def test_the_export_stage_exports_the_compacted_heads(family: str, tmp_path: Path) -> None:
    dense = task_model(family)
    compressed = _with_biases(task_model(family))
    _remove(compressed, {0: [1, 2], 1: [0, 1, 2, 3]})
    evalset = EvalSet.of(
        get_task("sequence_classification"),
        tokenizer_for(family),
        [Example(t, None, y) for t, y in sentiment_rows(10, seed=4)],
        ["a", "b", "c"],
        DatasetSpec(name="sst2", max_length=24),
        4,
    )
    out = run_export(compressed, dense, None, evalset, tmp_path, latency_iters=(1, 1))
    comp = out.section["compaction"]
    assert comp["applied"] and comp["heads_per_layer"] == [2, 0]
    assert [x["heads_in_graph"] for x in comp["layers"]] == [2, 1]
    assert out.section["fp32"]["parity"]["agreement"] == 1.0
    assert out.section["fp32"]["parity"]["max_abs_diff"] < 1e-4
    import onnx

    shapes = {tuple(t.dims) for t in onnx.load(str(out.fp32)).graph.initializer}
    d = layer_structures(dense)[0].head_dim
    assert (2 * d, 64) in shapes and (d, 64) in shapes  # the narrowed output projections
    assert np.isfinite(out.section["fp32"]["latency_cpu_ms"]["batch_1_ms"])
