from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.factories.tiny_bert import write_tiny_bert
from worker.pipelines.errors import UnsupportedSpec
from worker.pipelines.layers import drop_layers, kept_layer_indices


def test_kept_indices() -> None:
    assert kept_layer_indices(6, 3) == [0, 2, 4]
    assert kept_layer_indices(12, 6) == [0, 2, 4, 6, 8, 10]
    assert kept_layer_indices(12, 3) == [0, 4, 8]
    assert kept_layer_indices(4, 4) == [0, 1, 2, 3]
    with pytest.raises(UnsupportedSpec):
        kept_layer_indices(2, 3)


def test_drop_layers_copies_teacher_weights(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    folder = write_tiny_bert(tmp_path / "m", layers=6, with_head=True)
    teacher = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    student, kept = drop_layers(teacher, 3)
    assert kept == [0, 2, 4]
    assert student.config.num_hidden_layers == 3
    assert teacher.config.num_hidden_layers == 6  # the teacher is untouched
    assert len(student.bert.encoder.layer) == 3 and len(teacher.bert.encoder.layer) == 6
    for new, old in enumerate(kept):
        s_sd = student.bert.encoder.layer[new].state_dict()
        t_sd = teacher.bert.encoder.layer[old].state_dict()
        assert s_sd.keys() == t_sd.keys()
        for k in s_sd:
            assert torch.equal(s_sd[k], t_sd[k])
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    # A saved student reloads with 3 layers.
    student.save_pretrained(str(tmp_path / "s"))
    again = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "s"))
    assert len(again.bert.encoder.layer) == 3
    ids = torch.tensor([[101, 2204, 102]])
    with torch.no_grad():
        assert torch.allclose(again(input_ids=ids).logits, student.eval()(input_ids=ids).logits)
