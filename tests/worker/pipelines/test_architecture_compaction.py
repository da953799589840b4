"""FFN compaction on every family, from its table entry's FeedForward (fc1, fc2, activation;
ModernBERT's gated Wi): neurons emptied in each way a pruned model can empty them are removed
and the outputs stay the same within 1e-5."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.factories.encoder_configs import FAMILIES
from tests.worker.pipelines.family_models import first_output, random_inputs, task_model
from worker.pipelines.architecture import architecture_of, feed_forward, layer_list
from worker.pipelines.compaction import compact_feed_forward

pytestmark = pytest.mark.usefixtures("one_thread")


def _blocks(model: Any) -> list[Any]:
    arch = architecture_of(model)
    blocks = [feed_forward(layer, arch) for layer in layer_list(model)[2]]
    assert all(b is not None for b in blocks)
    return blocks


def _with_bias(model: Any) -> Any:
    """Biases set at random where the family has them (so a folded constant is not zero)."""
    with torch.no_grad():
        for block in _blocks(model):
            for lin in (block.fc1, block.fc2):
                if lin.bias is not None:
                    lin.bias.uniform_(-1.0, 1.0)
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_emptied_neurons_are_removed_exactly(family: str) -> None:
    model = _with_bias(
        task_model(family, mlp_bias=True) if family == "modernbert" else task_model(family)
    )
    first, last = _blocks(model)
    n = first.fc2.in_features
    with torch.no_grad():
        first.fc1.weight[:4] = 0.0  # input rows: constant act(b) (or, gated, act(b) * g)
        last.fc2.weight[:, 10:13] = 0.0  # output columns: dead
        if first.gated:
            first.fc1.weight[n : n + 4] = 0.0  # and their gates: constant act(b) * b_g
            last.fc1.weight[n + 20 : n + 22] = 0.0  # gate rows and biases: g = 0, dead
            last.fc1.bias[n + 20 : n + 22] = 0.0
            last.fc1.weight[30:33] = 0.0  # input rows and biases, gelu(0) = 0: dead
            last.fc1.bias[30:33] = 0.0
    inputs = random_inputs(model, 3, 20)
    small, summary = compact_feed_forward(model)
    torch.testing.assert_close(
        first_output(small, inputs), first_output(model, inputs), rtol=0, atol=1e-5
    )
    layers = summary["layers"]
    assert summary["applied"] is True and all(x["compacted"] for x in layers)
    assert layers[0]["constant"] == 4
    assert layers[1]["dead"] == (3 + 2 + 3 if first.gated else 3)
    s_first, s_last = _blocks(small)
    assert s_first.fc2.in_features == n - 4 and s_last.fc2.in_features == n - layers[1]["dead"]
    rows = 2 if first.gated else 1
    assert s_first.fc1.out_features == rows * (n - 4)
    assert first.fc2.in_features == n  # the model itself keeps its shapes


def test_a_gated_input_row_alone_is_not_removed() -> None:
    """act(b) * g with g still a function of the input: neither constant nor dead."""
    model = _with_bias(task_model("modernbert", mlp_bias=True))
    first, _ = _blocks(model)
    with torch.no_grad():
        first.fc1.weight[:4] = 0.0
    same, summary = compact_feed_forward(model)
    assert same is model and summary["applied"] is False


@pytest.mark.parametrize("family", FAMILIES)
def test_a_dense_model_is_left_as_it_is(family: str) -> None:
    model = task_model(family)
    same, summary = compact_feed_forward(model)
    assert same is model and summary["ffn_neurons"] == summary["ffn_neurons_kept"]


def test_modernbert_without_biases_drops_zero_inputs_and_zero_gates() -> None:
    model = task_model("modernbert")  # mlp_bias False: every zero row has a zero bias
    first, _ = _blocks(model)
    n = first.fc2.in_features
    with torch.no_grad():
        first.fc1.weight[:5] = 0.0  # gelu(0) * g = 0
        first.fc1.weight[n + 7 : n + 9] = 0.0  # act(u) * 0 = 0
    inputs = random_inputs(model, 2, 20)
    small, summary = compact_feed_forward(model)
    torch.testing.assert_close(
        first_output(small, inputs), first_output(model, inputs), rtol=0, atol=1e-5
    )
    assert (summary["layers"][0]["dead"], summary["layers"][0]["constant"]) == (7, 0)
    assert _blocks(small)[0].fc2.bias is None  # nothing folded: no bias added
