"""Layer dropping on every family: the family's layer list is cut, its layer count and
per-layer config lists kept in step, and the student saved with save_pretrained reloads into
a freshly built model (from the saved config and weights) that computes the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.factories.encoder_configs import FAMILIES
from tests.worker.pipelines.family_models import first_output, random_inputs, task_model
from worker.pipelines.architecture import layer_list, model_config
from worker.pipelines.errors import UnsupportedSpec
from worker.pipelines.layers import drop_layers

pytestmark = pytest.mark.usefixtures("one_thread")

# 6 layers, 4 kept (0, 1, 3, 4): ModernBERT's full/sliding pattern (every 2nd layer global)
# becomes full, sliding, sliding, full, which its config would not recompute from 4 layers.
OVERRIDES = {"num_hidden_layers": 6}
MODERNBERT = {"global_attn_every_n_layers": 2, "local_attention": 8}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_dropped_student_reloads_and_computes_the_same(family: str, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    extra = MODERNBERT if family == "modernbert" else {}
    teacher = task_model(family, **OVERRIDES, **extra)
    student, kept = drop_layers(teacher, 4)
    assert kept == [0, 1, 3, 4]
    assert model_config(student).layers == 4 and model_config(teacher).layers == 6
    assert len(layer_list(student)[2]) == 4 and len(layer_list(teacher)[2]) == 6
    for new, old in enumerate(kept):
        s_sd, t_sd = (
            layer_list(student)[2][new].state_dict(),
            layer_list(teacher)[2][old].state_dict(),
        )
        assert s_sd.keys() == t_sd.keys()
        assert all(torch.equal(s_sd[k], t_sd[k]) for k in s_sd)
    if family == "modernbert":
        types = teacher.config.layer_types
        assert student.config.layer_types == [types[i] for i in kept]
        assert student.config.layer_types == [
            "full_attention",
            "sliding_attention",
            "sliding_attention",
            "full_attention",
        ]
    student.save_pretrained(str(tmp_path / "s"))
    config = AutoConfig.from_pretrained(str(tmp_path / "s"))
    fresh = AutoModelForSequenceClassification.from_config(config)  # random weights
    fresh.load_state_dict(load_file(str(tmp_path / "s" / "model.safetensors")))
    fresh.eval()
    inputs = random_inputs(teacher, 3, 24)  # longer than ModernBERT's local window
    torch.testing.assert_close(
        first_output(fresh, inputs), first_output(student.eval(), inputs), rtol=0, atol=1e-5
    )
    if family == "modernbert":  # the layers' own attention kinds survived the reload
        kinds = [layer.attention_type for layer in layer_list(fresh)[2]]
        assert kinds == student.config.layer_types


@pytest.mark.parametrize("family", ["distilbert", "modernbert"])
def test_keeping_more_layers_than_there_are_is_refused(family: str) -> None:
    with pytest.raises(UnsupportedSpec, match=r"layers\.keep=3"):
        drop_layers(task_model(family), 3)
