"""Structured pruning (heads and FFN neurons to a speedup) on the tasks other than
single-label classification: the calibration's gradients come from the task's own loss, the
compacted export keeps the task's outputs, and parity is the task's own (the same best span
for question answering). A hand-made latency table prices the model, so the run is quick and
its allocation exact; the real timing loop is covered on BERT classification
(test_structured_stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest

from tests.factories.encoders import write_tiny_encoder
from tests.factories.onnx_files import onnx_parameters
from tests.factories.tiny_bert import write_squad_like
from tests.worker.pipelines.test_compress import ctx_for, make_env, spec
from tests.worker.pipelines.test_structured_stage import (
    check_removed_are_zero,
    check_steps,
    key_of,
    linear_table,
    packaged,
    report_of,
    store,
    table_only,
)
from worker.pipelines.compress import run_pipeline
from worker.pipelines.progress import MemoryReporter

pytestmark = pytest.mark.usefixtures("one_thread")


def _squad_env(tmp_path: Path) -> dict[str, Any]:
    folder = write_tiny_encoder(tmp_path / "upload", "bert", task="question_answering")
    env = make_env(tmp_path, model_dir=folder, n_train=32, n_dev=12)
    write_squad_like(env["settings"].data_dir, n_train=24, n_dev=8)
    return env


def test_a_structured_question_answering_job_exports_its_spans_from_the_small_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _squad_env(tmp_path)
    s = spec(
        env["model_id"],
        task="question_answering",
        dataset={"name": "squad", "max_length": 48, "doc_stride": 16},
        pruning={
            "method": "structured",
            "structured": {"target_speedup": 2.0, "steps": 2, "calibration_batches": 2},
        },
        distillation={"enabled": True, "hardness": 0.5, "temperature": 2.0},
    )
    table = linear_table(key_of(tmp_path / "upload", s), head=1e-3, neuron=5e-5, rest=5e-4)
    store(table, env)
    table_only(monkeypatch, table)
    rep = MemoryReporter()
    summary = run_pipeline(s, ctx_for(env, tmp_path, rep))
    report = report_of(env)
    assert report["task"] == "question_answering"
    st = report["structured"]
    check_steps(st)
    assert st["final"]["predicted_speedup"] >= 2.0 * (1 - 1e-9)
    # each pruning step's dev score is the task's primary metric (SQuAD F1)
    assert [m["prune_step"] for m in rep.step_log] == [1, 2]
    assert all("dev_f1" in m for m in rep.step_log)
    # the exported graph is the compacted one (its weights: exactly the dense model's less
    # the removed parameters), with both span outputs, and the span the
    # ONNX file picks is the pruned PyTorch model's for the dev questions
    fp32 = report["onnx"]["fp32"]
    assert fp32["parity"]["unit"] == "questions" and fp32["parity"]["agreement"] >= 0.995
    onnx_path = env["artifacts"]["model_onnx"][0]
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    assert [o.name for o in graph.output] == ["start_logits", "end_logits"]
    removed = st["final"]["removed_parameters"]
    assert onnx_parameters(onnx_path) == report["dense"]["parameters"] - removed
    assert summary["parameters"] == report["compressed"]["parameters"]
    # the packaged model keeps exactly the reported heads and neurons, and reloads as QA
    model = packaged(env, tmp_path / "out")
    assert type(model).__name__ == "BertForQuestionAnswering"
    check_removed_are_zero(model, st["final"])
