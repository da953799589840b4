"""compact_feed_forward on a BERT model, and the export stage using it."""

from __future__ import annotations

import copy
from typing import Any

import torch

from worker.pipelines.compaction import compact_feed_forward


def _emptied(model: Any) -> Any:
    out = copy.deepcopy(model).eval()
    layers = out.bert.encoder.layer
    with torch.no_grad():
        layers[0].intermediate.dense.weight[:5] = 0.0  # constant neurons
        layers[0].intermediate.dense.bias[:5] = 0.7
        layers[-1].output.dense.weight[:, 2:4] = 0.0  # dead neurons
    return out


def test_compacted_bert_gives_the_same_logits(tiny_model: Any, tokenizer: Any) -> None:
    model = _emptied(tiny_model)
    enc = tokenizer(["a small test", "another longer test sentence here"], padding=True,
                    return_tensors="pt")  # fmt: skip
    small, summary = compact_feed_forward(model)
    width = model.config.intermediate_size
    with torch.no_grad():
        torch.testing.assert_close(small(**enc).logits, model(**enc).logits, rtol=0, atol=1e-5)
    assert summary["applied"] is True
    assert summary["layers"][0]["constant"] == 5 and summary["layers"][-1]["dead"] == 2
    assert small.bert.encoder.layer[0].intermediate.dense.out_features == width - 5
    assert small.bert.encoder.layer[-1].output.dense.in_features == width - 2
    assert summary["ffn_neurons"] - summary["ffn_neurons_kept"] == 7
    assert model.bert.encoder.layer[0].intermediate.dense.out_features == width  # untouched


def test_nothing_to_remove_returns_the_model_itself(tiny_model: Any) -> None:
    same, summary = compact_feed_forward(tiny_model)
    assert same is tiny_model and summary["applied"] is False
    assert all(x["kept"] == x["neurons"] for x in summary["layers"])


def test_unknown_layout_is_left_alone() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    same, summary = compact_feed_forward(model)
    assert same is model and summary == {"applied": False, "reason": "no encoder layer list"}
