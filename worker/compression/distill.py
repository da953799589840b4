"""Token-level distillation of hidden states (ZipLM, Kurtic et al. 2023): the student's hidden
state after each encoder layer pulled towards the teacher's, token by token.

A pure loss on tensors: ``hidden_distillation_loss`` takes the two models' hidden-state tuples
(as transformers returns them with ``output_hidden_states=True``: the embeddings' output, then
one entry per layer), the attention mask and which teacher layer each student layer stands for.
Each layer's term is a relative squared error over the real (unmasked) tokens,
``sum ||h_s - h_t||^2 / sum ||h_t||^2``, so that layers whose activations differ in scale
weigh alike and the term is comparable with the logit loss it is added to; the terms are
averaged over the student's layers. The embeddings' output is left out (the methods here never
change the embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

EPS = 1e-12  # keeps an all-zero teacher state (a padded-only row) from dividing by zero


def layer_map(student_layers: int, teacher_layers: int, kept: Sequence[int] | None) -> list[int]:
    """For each student layer, the teacher layer (0-based) it stands for: itself when the two
    have as many layers, else the teacher layer it was kept from (layer dropping's `kept`)."""
    if kept is None:
        if student_layers != teacher_layers:
            raise ValueError(
                f"a {student_layers}-layer student of a {teacher_layers}-layer teacher needs "
                "the kept layers' indices"
            )
        return list(range(student_layers))
    if len(kept) != student_layers or not all(0 <= k < teacher_layers for k in kept):
        raise ValueError(f"kept layers {list(kept)} do not map {student_layers} student layers "
                         f"onto {teacher_layers}")  # fmt: skip
    return [int(k) for k in kept]


def hidden_distillation_loss(
    student: Sequence[Tensor], teacher: Sequence[Tensor], mask: Tensor, mapping: Sequence[int]
) -> Tensor:
    """The mean over student layers i of the relative squared error of ``student[i + 1]``
    against ``teacher[mapping[i] + 1]`` over the tokens where `mask` (batch x sequence) is
    set. Both tuples start with the embeddings' output, as transformers returns them."""
    if len(student) != len(mapping) + 1:
        raise ValueError(f"{len(student)} student hidden states for {len(mapping)} layers")
    weights = mask.to(student[0].dtype).unsqueeze(-1)
    terms = []
    for i, t in enumerate(mapping):
        s_h, t_h = student[i + 1], teacher[t + 1].detach()
        if s_h.shape != t_h.shape:
            raise ValueError(f"layer {i}: student {tuple(s_h.shape)}, teacher {tuple(t_h.shape)}")
        err = ((s_h - t_h) ** 2 * weights).sum()
        terms.append(err / ((t_h**2) * weights).sum().clamp_min(EPS))
    return torch.stack(terms).mean()
