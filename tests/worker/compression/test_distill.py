"""Token-level hidden-state distillation: the loss against a hand computation, masked tokens
left out, the embeddings' output left out, a dropped-layer student mapped onto the layers it
kept, and gradients reaching the student only."""

from __future__ import annotations

import pytest
import torch

from worker.compression.distill import hidden_distillation_loss, layer_map


def test_the_loss_is_the_mean_relative_error_over_real_tokens() -> None:
    t = (torch.zeros(1, 2, 2), torch.tensor([[[1.0, 0.0], [9.0, 9.0]]]),
         torch.tensor([[[0.0, 2.0], [5.0, 5.0]]]))  # fmt: skip
    s = (torch.ones(1, 2, 2), torch.tensor([[[2.0, 0.0], [0.0, 0.0]]]),
         torch.tensor([[[0.0, 1.0], [0.0, 0.0]]]))  # fmt: skip
    mask = torch.tensor([[1, 0]])  # the second token is padding
    # layer 1: (2-1)^2 / 1^2 = 1; layer 2: (1-2)^2 / 2^2 = 0.25; the mean: 0.625
    assert float(hidden_distillation_loss(s, t, mask, [0, 1])) == pytest.approx(0.625)
    assert float(hidden_distillation_loss(t, t, mask, [0, 1])) == 0.0


def test_a_dropped_layer_student_is_held_to_the_layers_it_kept() -> None:
    g = torch.Generator().manual_seed(0)
    teacher = tuple(torch.randn(2, 3, 4, generator=g) for _ in range(5))  # 4 layers
    student = (teacher[0], teacher[2], teacher[4])  # layers 1 and 3 kept
    mask = torch.ones(2, 3)
    mapping = layer_map(2, 4, [1, 3])
    assert mapping == [1, 3]
    assert float(hidden_distillation_loss(student, teacher, mask, mapping)) == 0.0
    assert float(hidden_distillation_loss(student, teacher, mask, [0, 1])) > 0.1


def test_the_gradient_reaches_the_student_and_not_the_teacher() -> None:
    s = [torch.zeros(1, 2, 3), torch.randn(1, 2, 3, requires_grad=True)]
    t = [torch.zeros(1, 2, 3), torch.randn(1, 2, 3, requires_grad=True)]
    hidden_distillation_loss(s, t, torch.ones(1, 2), [0]).backward()  # type: ignore[no-untyped-call]
    assert s[1].grad is not None and t[1].grad is None


def test_mismatches_are_refused() -> None:
    with pytest.raises(ValueError, match="needs the kept layers"):
        layer_map(2, 4, None)
    with pytest.raises(ValueError, match="do not map"):
        layer_map(2, 4, [1, 4])
    h = [torch.zeros(1, 2, 3)] * 3
    with pytest.raises(ValueError, match="student hidden states"):
        hidden_distillation_loss(h, h, torch.ones(1, 2), [0])
    with pytest.raises(ValueError, match="layer 0"):
        hidden_distillation_loss(h[:2], [h[0], torch.zeros(1, 2, 4)], torch.ones(1, 2), [0])
