"""The whole pipeline on a tiny model of every family (its own tokenizer, uploaded as a zip):
layer dropping (2 -> 1), gradual oBERT with distillation, QAT int8, ONNX export with parity, and the
packaged model reloaded with plain transformers, its sparsity exactly the target over the
family's full prunable set."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from app.architectures import ARCHITECTURES
from tests.factories.encoder_configs import FAMILIES
from tests.factories.encoders import write_tiny_encoder
from tests.factories.tiny_bert import write_squad_like
from tests.worker.pipelines.test_compress import ctx_for, make_env, spec
from worker.pipelines.architecture import model_config, prunable_targets
from worker.pipelines.compress import run_pipeline
from worker.pipelines.package import load_hf_dir
from worker.pipelines.progress import MemoryReporter

pytestmark = pytest.mark.usefixtures("one_thread")

# Question answering on the two families whose attention is not BERT's
TASKS = {"deberta-v2": "question_answering", "modernbert": "question_answering"}


def _env(tmp_path: Path, family: str, task: str) -> dict[str, Any]:
    folder = write_tiny_encoder(tmp_path / "upload", family, task=task, num_labels=2)
    env = make_env(tmp_path, model_dir=folder, n_train=32, n_dev=12)
    write_squad_like(env["settings"].data_dir, n_train=16, n_dev=6)
    return env


@pytest.mark.parametrize("family", FAMILIES)
def test_every_stage_on_every_family(family: str, tmp_path: Path) -> None:
    task = TASKS.get(family, "sequence_classification")
    env = _env(tmp_path, family, task)
    s = spec(
        env["model_id"],
        task=task,
        dataset={"name": "squad" if task == "question_answering" else "sst2", "max_length": 32},
        layers={"keep": 1},
        pruning={
            "method": "obert",
            "sparsity": 0.5,
            "obert": {"num_grads": 4, "block_size": 16},
            "schedule": {"kind": "gradual", "steps": 4, "pruning_steps": 2},
        },
        distillation={"enabled": True, "hardness": 0.5, "temperature": 2.0},
        quantization={"method": "qat_int8", "qat_steps": 2},
    )
    summary = run_pipeline(s, ctx_for(env, tmp_path, MemoryReporter()))
    assert summary["sparsity"] == pytest.approx(0.5, abs=1e-3)
    report = json.loads(env["artifacts"]["report"][0].read_text())
    assert report["compressed"]["num_hidden_layers"] == 1
    assert report["onnx"]["fp32"]["parity"]["agreement"] >= 0.995
    folder = tmp_path / "out"
    with tarfile.open(env["artifacts"]["model"][0]) as t:
        t.extractall(folder, filter="data")
    model = load_hf_dir(folder)
    arch = ARCHITECTURES[family]
    assert type(model).__name__.startswith(arch.class_prefix) and model_config(model).layers == 1
    targets = prunable_targets(model)
    assert len(targets) == len(arch.layer_matrices(model_config(model)))
    zeros = sum(int((m.weight == 0).sum()) for m in targets.values())
    total = sum(m.weight.numel() for m in targets.values())
    assert zeros == round(0.5 * total)  # exactly the target over the full set
