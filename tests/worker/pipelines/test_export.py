"""ONNX export on a tiny random BERT: parity with PyTorch, the typed parity error, ORT metrics."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.schemas.job_spec import DatasetSpec
from tests.factories.tiny_bert import sentiment_rows
from worker.compression import quantize_dynamic_int8
from worker.pipelines import export as ex
from worker.pipelines.data import Example
from worker.pipelines.errors import ExportParityFailed
from worker.pipelines.evaluate import evaluate
from worker.pipelines.export_stage import run_export
from worker.pipelines.host import host_int8_reduced_range
from worker.pipelines.inference import EvalSet, onnx_outputs, torch_outputs
from worker.pipelines.tasks.base import Agreement
from worker.pipelines.tasks.classification import TASK as CLASSIFICATION

LABELS = ["negative", "positive"]
CPU = torch.device("cpu")


def _examples(n: int = 12) -> list[Example]:
    return [Example(text, None, label) for text, label in sentiment_rows(n, seed=3)]


def _setup(
    tokenizer: Any, examples: list[Example], max_length: int = 16, batch: int = 5
) -> EvalSet:
    # batch 5: uneven batches, so padding differs between batches
    spec = DatasetSpec(name="sst2", max_length=max_length)
    return EvalSet.of(CLASSIFICATION, tokenizer, examples, LABELS, spec, batch)


def _logits(outputs: list[Any]) -> np.ndarray:
    return np.stack([o["logits"] for o in outputs])


def _pruned(model: Any) -> Any:
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        for layer in pruned.bert.encoder.layer:
            w = layer.intermediate.dense.weight
            w[w.abs() < w.abs().median()] = 0.0
    return pruned.eval()


def _ort_accuracy_one_by_one(path: Path, tokenizer: Any, examples: list[Example]) -> float:
    """Independent of the pipeline: one example per run, unpadded, inputs built here."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    correct = 0
    for e in examples:
        enc = tokenizer(e.text, truncation=True, max_length=16, return_tensors="np")
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in names}
        correct += int(int(sess.run(None, feed)[0].argmax(-1)[0]) == e.label)
    return correct / len(examples)


def test_export_parity_and_metrics_from_the_artifact(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    examples = _examples()
    compressed = _pruned(tiny_model)
    qmodel = quantize_dynamic_int8(compressed)
    out = run_export(
        compressed, tiny_model, qmodel, _setup(tokenizer, examples), tmp_path, latency_iters=(1, 1)
    )
    assert out.fp32.name == "model.onnx" and out.int8.name == "model-int8.onnx"
    sec = out.section
    fp32, int8, dense = sec["fp32"], sec["int8"], sec["dense_fp32"]
    assert fp32["parity"]["agreement"] == 1.0 and fp32["parity"]["n"] == len(examples)
    assert fp32["parity"]["unit"] == "examples"
    assert fp32["primary_metric"] == {"name": "accuracy", "value": fp32["accuracy"]}
    assert fp32["parity"]["max_abs_diff"] < 1e-4
    assert dense["parity"]["agreement"] == 1.0
    assert int8["parity"]["reference"] == "pytorch_int8"
    assert 0.0 <= int8["parity"]["agreement"] <= 1.0
    assert int8["parity"]["max_abs_diff"] >= 0.0
    # accuracy computed by ONNX Runtime from the file equals an independent recomputation
    for v, path in ((fp32, out.fp32), (int8, out.int8)):
        assert v["accuracy"] == pytest.approx(_ort_accuracy_one_by_one(path, tokenizer, examples))
    torch_acc = evaluate(
        compressed,
        tokenizer,
        examples,
        LABELS,
        batch_size=5,
        max_length=16,
        device=torch.device("cpu"),
    ).accuracy
    assert fp32["accuracy"] == pytest.approx(torch_acc)
    assert set(fp32["per_class"]) == set(LABELS) and 0.0 <= fp32["macro_f1"] <= 1.0
    for v in (fp32, int8, dense):
        lat = v["latency_cpu_ms"]
        assert lat["batch_1_ms"] > 0 and lat["batch_32_ms"] > 0 and lat["throughput_b32_per_s"] > 0
        assert v["file_size"]["raw_mb"] > 0
    assert fp32["file_size"]["raw_mb"] == pytest.approx(out.fp32.stat().st_size / 2**20, rel=1e-3)
    assert int8["speedup_vs_dense"]["batch_1"] > 0 and "batch_32" in fp32["speedup_vs_dense"]
    assert sec["int8_weight_bits"] == (7 if host_int8_reduced_range() else 8)
    assert _weight_range(out.int8) <= (64 if sec["int8_weight_bits"] == 7 else 127)


def _weight_range(path: Path) -> int:
    """The largest |q| of the int8 file's quantized weights."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = [
        numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8
    ]
    assert weights
    return max(int(np.abs(w.astype(np.int32)).max()) for w in weights)


@pytest.mark.parametrize(("reduce_range", "bound"), [(True, 64), (False, 127)])
def test_int8_weights_are_7_bit_when_the_range_is_reduced(
    tiny_model: Any, tokenizer: Any, tmp_path: Path, reduce_range: bool, bound: int
) -> None:
    fp32 = ex.export_onnx(tiny_model, tokenizer, tmp_path / "m.onnx", max_length=16)
    int8 = ex.quantize_onnx_int8(fp32, tmp_path / "q.onnx", reduce_range=reduce_range)
    got = _weight_range(int8)
    assert got <= bound and (reduce_range or got > 64)  # 8-bit weights use the full grid


def test_onnx_graph_has_dynamic_axes_and_inputs(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    import onnx

    path = ex.export_onnx(tiny_model, tokenizer, tmp_path / "m.onnx", max_length=16)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    assert [o.name for o in graph.output] == ["logits"]
    assert [d.dim_param for d in graph.output[0].type.tensor_type.shape.dim] == ["batch", ""]
    sess = ex.open_session(path, threads=1)
    rows = [Example("a longer sentence than the export example had " * 3, None, 0)]
    evalset = _setup(tokenizer, rows * 3, max_length=40, batch=3)
    logits = _logits(onnx_outputs(evalset, sess))
    ref = _logits(torch_outputs(evalset, tiny_model, CPU))
    assert logits.shape == (3, 2) and np.abs(logits - ref).max() < 1e-4


def test_attention_is_traced_in_its_eager_form_and_the_model_left_as_it_was(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    import onnx

    tiny_model.set_attn_implementation("sdpa")
    path = ex.export_onnx(tiny_model, tokenizer, tmp_path / "m.onnx", max_length=16)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Softmax" in ops and "IsNaN" not in ops  # SDPA's trace guards its softmax with IsNaN
    assert tiny_model.config._attn_implementation == "sdpa"
    rows = [Example("short", None, 0), Example("a much longer second row " * 2, None, 1)]
    sess = ex.open_session(path, threads=1)
    evalset = _setup(tokenizer, rows, batch=2)
    logits = _logits(onnx_outputs(evalset, sess))
    ref = _logits(torch_outputs(evalset, tiny_model, CPU))
    assert np.abs(logits - ref).max() < 1e-4  # padded rows: the mask path is kept


def _negate_logits(path: Path) -> Path:
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name == ex.LOGITS:
                node.output[i] = "logits_before_neg"
    model.graph.node.append(helper.make_node("Neg", ["logits_before_neg"], [ex.LOGITS]))
    onnx.save(model, str(path))
    return path


def test_parity_failure_raises_typed_error(
    tiny_model: Any, tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_export = ex.export_onnx

    def broken_export(model: Any, tok: Any, dest: Path, **kw: Any) -> Path:
        path = real_export(model, tok, dest, **kw)
        _negate_logits(path)
        return path

    monkeypatch.setattr(ex, "export_onnx", broken_export)
    with pytest.raises(ExportParityFailed) as err:
        run_export(
            tiny_model, tiny_model, None, _setup(tokenizer, _examples()), tmp_path,
            latency_iters=(1, 1),
        )  # fmt: skip
    assert err.value.code == "export_parity_failed"
    assert "fp32 ONNX export agrees with pytorch_fp32 on" in err.value.message
    assert "needs >= 99.50%" in err.value.message


def test_parity_numbers() -> None:
    a = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.1], [0.0, 0.5]], dtype=np.float32)
    b = a.copy()
    b[2] = [0.1, 0.3]
    rows = [{"logits": r} for r in a]
    refs = [{"logits": r} for r in b]
    p = CLASSIFICATION.agree([], rows, refs, "ref", DatasetSpec(name="sst2"))
    assert p.agreement == 0.75 and p.n == 4 and p.unit == "examples"
    assert p.max_abs_diff == pytest.approx(0.2)
    ex.require_parity(p, "fp32", 0.75)
    with pytest.raises(ExportParityFailed, match=r"75\.00% of 4 dev examples"):
        ex.require_parity(p, "fp32", 0.995)
    with pytest.raises(ValueError):
        CLASSIFICATION.agree([], rows, refs[:3], "ref", DatasetSpec(name="sst2"))
    assert isinstance(p, Agreement)


def _initializer_shapes(path: Path) -> list[tuple[int, ...]]:
    import onnx

    return [tuple(t.dims) for t in onnx.load(str(path)).graph.initializer]


def test_emptied_neurons_leave_the_exported_graph_and_parity_holds(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    compressed = copy.deepcopy(tiny_model).eval()
    width = compressed.config.intermediate_size
    with torch.no_grad():
        fc1 = compressed.bert.encoder.layer[0].intermediate.dense
        fc1.weight[: width // 2] = 0.0  # half the neurons of layer 0 output a constant
    out = run_export(
        compressed, tiny_model, None, _setup(tokenizer, _examples()), tmp_path,
        latency_iters=(1, 1),
    )  # fmt: skip
    comp = out.section["compaction"]
    assert comp["applied"] and comp["layers"][0]["constant"] == width // 2
    assert comp["ffn_neurons"] - comp["ffn_neurons_kept"] == width // 2
    hidden = compressed.config.hidden_size
    assert (width - width // 2, hidden) in _initializer_shapes(out.fp32)  # narrower MatMul
    assert (width, hidden) in _initializer_shapes(out.fp32)  # the other layer kept its width
    # the compacted graph against the uncompacted PyTorch model: the same function
    assert out.section["fp32"]["parity"]["agreement"] == 1.0
    assert out.section["fp32"]["parity"]["max_abs_diff"] < 1e-4


class _Recorder:
    """A stand-in session that records which session ran, and at which batch size."""

    def __init__(self, name: str, calls: list[tuple[str, int]]) -> None:
        self.name, self.calls = name, calls

    def get_inputs(self) -> list[Any]:
        return [type("Arg", (), {"name": n})() for n in ("input_ids", "attention_mask")]

    def run(self, outputs: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls.append((self.name, int(feed["input_ids"].shape[0])))
        return [np.zeros((feed["input_ids"].shape[0], 2), dtype=np.float32)]


def test_interleaved_latencies_take_turns_between_sessions(tokenizer: Any) -> None:
    calls: list[tuple[str, int]] = []
    sessions = {n: _Recorder(n, calls) for n in ("dense", "int8")}
    lat = ex.interleaved_latencies(sessions, tokenizer, 16, iters_b1=7, iters_b32=2, rounds=3)
    timed = calls[6:]  # after the warm-up: 2 batch-1 runs and 1 batch-32 run each
    assert calls[:6] == [("dense", 1)] * 2 + [("dense", 32)] + [("int8", 1)] * 2 + [("int8", 32)]
    one_round = [("dense", 1)] * 3 + [("dense", 32)] + [("int8", 1)] * 3 + [("int8", 32)]
    assert timed == one_round * 3
    for name in sessions:
        assert lat[name]["runs_b1"] == 9 and lat[name]["runs_b32"] == 3
        assert lat[name]["batch_1_ms"] >= 0 and lat[name]["throughput_b32_per_s"] >= 0


def test_outputs_of_another_shape_fail_as_a_parity_failure(tokenizer: Any) -> None:
    from worker.pipelines.export_stage import agreement

    evalset = _setup(tokenizer, _examples(2))
    two = [{"logits": np.zeros(2, dtype=np.float32)}] * 2
    three = [{"logits": np.zeros(3, dtype=np.float32)}] * 2
    with pytest.raises(ExportParityFailed, match="cannot be compared with pytorch_fp32"):
        agreement(evalset, three, two, "pytorch_fp32")
