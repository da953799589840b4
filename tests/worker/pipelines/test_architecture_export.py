"""ONNX export on every family and task: the graph matches PyTorch at a batch size and sequence
length other than the traced ones (DeBERTa's relative attention; ModernBERT's rotary and
sliding-window attention, inside its local window and beyond it), feeds token_type_ids only
where the model reads them, and quantizes to int8; the whole export stage (compaction, parity
gate, int8, latency) runs on each family."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from app.catalog import TASKS
from app.schemas.job_spec import DatasetSpec
from tests.factories.encoder_configs import FAMILIES
from tests.factories.encoders import tokenizer_for
from tests.factories.tiny_bert import sentiment_rows
from tests.worker.pipelines.family_models import first_output, random_inputs, task_model
from worker.compression import quantize_dynamic_int8
from worker.pipelines import export as ex
from worker.pipelines.architecture import architecture_of, attribute, layer_list, prunable_targets
from worker.pipelines.data import Example
from worker.pipelines.export_stage import run_export
from worker.pipelines.inference import EvalSet
from worker.pipelines.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

READS_TYPES = {"bert", "electra"}  # type_vocab_size > 0 and a tokenizer that emits them
TRACED = (2, 16)  # export.py traces two rows of 16 tokens


def _onnx(session: object, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    feed = ex.feed_of(session, inputs)
    outs = session.run(None, feed)  # type: ignore[attr-defined]
    return torch.from_numpy(np.stack(outs, axis=-1) if len(outs) > 1 else outs[0])


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_export_matches_pytorch_on_other_shapes(family: str, task: str, tmp_path: Path) -> None:
    model = task_model(family, task)
    tokenizer = tokenizer_for(family)
    outputs = get_task(task).outputs
    path = ex.export_onnx(model, tokenizer, tmp_path / "m.onnx", max_length=64, outputs=outputs)
    session = ex.open_session(path, threads=1)
    names = [i.name for i in session.get_inputs()]
    types = family in READS_TYPES
    assert names == ["input_ids", "attention_mask"] + (["token_type_ids"] if types else [])
    assert [o.name for o in session.get_outputs()] == [o.name for o in outputs]
    per_token = outputs[0].per_token
    for batch, length in ((3, 40), (1, 7), TRACED):
        inputs = random_inputs(model, batch, length, seed=length, types=types)
        got, want = _onnx(session, inputs), first_output(model, inputs)
        assert got.shape == want.shape
        if per_token:  # the real tokens (a padded one may see no real token in a window)
            real = inputs["attention_mask"].bool()
            got, want = got[real], want[real]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_modernbert_local_attention_holds_beyond_the_window(tmp_path: Path) -> None:
    """local_attention 16: rows of 40 tokens are cut by the window in the sliding layer (the
    same weights with a window wider than the rows give other outputs there, and the same
    outputs on 8 tokens), and the graph, traced on 16 tokens, follows."""
    windowed = task_model("modernbert", local_attention=16)
    wide = task_model("modernbert", local_attention=256)
    assert windowed.config.layer_types == ["full_attention", "sliding_attention"]
    short, long = random_inputs(windowed, 2, 8), random_inputs(windowed, 3, 40)
    torch.testing.assert_close(first_output(windowed, short), first_output(wide, short))
    assert not torch.allclose(first_output(windowed, long), first_output(wide, long), atol=1e-3)
    path = ex.export_onnx(windowed, tokenizer_for("modernbert"), tmp_path / "m.onnx", max_length=16)
    session = ex.open_session(path, threads=1)
    for batch, length in ((3, 40), (2, 100)):
        inputs = random_inputs(windowed, batch, length, seed=batch)
        torch.testing.assert_close(
            _onnx(session, inputs), first_output(windowed, inputs), rtol=0, atol=1e-4
        )


def _half_pruned(model: torch.nn.Module) -> torch.nn.Module:
    """Half of every prunable matrix zeroed, and a third of each layer's FFN neurons emptied
    (their input rows: both halves of a gated one), so the export's compaction has work."""
    out = copy.deepcopy(model)
    arch = architecture_of(out)
    with torch.no_grad():
        for linear in prunable_targets(out).values():
            w = linear.weight
            w[w.abs() < w.abs().median()] = 0.0
        for layer in layer_list(out)[2]:
            fc1 = attribute(layer, arch.ffn.fc1)
            width = fc1.out_features // (2 if arch.ffn.gated else 1)
            gone = torch.arange(0, width, 3)
            rows = torch.cat([gone, gone + width]) if arch.ffn.gated else gone
            fc1.weight[rows] = 0.0
            if fc1.bias is not None:
                fc1.bias[rows] = 0.0
    return out.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_export_stage_runs_on_every_family(family: str, tmp_path: Path) -> None:
    tokenizer = tokenizer_for(family)
    dense = task_model(family)
    compressed = _half_pruned(dense)
    labels = ["a", "b", "c"]
    examples = [Example(t, None, y) for t, y in sentiment_rows(10, seed=4)]
    evalset = EvalSet.of(
        get_task("sequence_classification"),
        tokenizer,
        examples,
        labels,
        DatasetSpec(name="sst2", max_length=24),
        4,
    )
    qmodel = quantize_dynamic_int8(compressed)
    out = run_export(compressed, dense, qmodel, evalset, tmp_path, latency_iters=(1, 1))
    sec = out.section
    compaction = sec["compaction"]
    assert compaction["applied"] and compaction["ffn_neurons_kept"] < compaction["ffn_neurons"]
    assert sec["fp32"]["parity"]["agreement"] == 1.0
    assert sec["fp32"]["parity"]["max_abs_diff"] < 1e-4
    assert sec["dense_fp32"]["parity"]["agreement"] == 1.0
    assert sec["int8"]["parity"]["n"] == len(examples)
    assert out.int8.is_file() and sec["int8"]["latency_cpu_ms"]["batch_1_ms"] > 0
