"""Tiny random task models of every family (tests.factories.encoder_configs), built in memory
for the per-family pipeline tests, and the inputs they are compared on."""

from __future__ import annotations

from typing import Any

import torch

from tests.factories.encoder_configs import tiny_config
from tests.factories.encoders import auto_class

OUTPUTS = {"question_answering": 2, "regression": 1}  # start/end; one score


def task_model(
    family: str, task: str = "sequence_classification", *, seed: int = 0, **overrides: Any
) -> Any:
    """An eval-mode `AutoModelFor<task>` of `family` (3 labels for the labelled tasks)."""
    config = tiny_config(family, num_labels=OUTPUTS.get(task, 3), **overrides)
    torch.manual_seed(seed)
    return auto_class(task).from_config(config).eval()


def random_inputs(
    model: Any, batch: int, length: int, *, seed: int = 0, types: bool = False
) -> dict[str, torch.Tensor]:
    """Random ids (avoiding the special ids 0-4) with the last row right-padded to a third of
    its length; token_type_ids (segment 1 on the second half) when `types`."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, int(model.config.vocab_size), (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, max(1, length // 3) :] = 0
    ids[-1, max(1, length // 3) :] = int(model.config.pad_token_id or 0)
    out = {"input_ids": ids, "attention_mask": mask}
    if types:
        out["token_type_ids"] = (torch.arange(length) >= length // 2).long().expand(batch, -1)
    return out


def first_output(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The task output of a forward pass: logits, or start and end logits stacked on a last
    axis ([batch, sequence, 2])."""
    with torch.no_grad():
        out = model(**inputs)
    if getattr(out, "start_logits", None) is not None:
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    logits: torch.Tensor = out.logits
    return logits
