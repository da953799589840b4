"""The distillation teacher: the frozen dense model's task outputs for training items, cached.

In eval mode the teacher's outputs for an item do not change, so they are computed once per
job, before the first training step that needs them: one pass over the training items in
index order, in batches of `fill_batch_size`, kept (token-level outputs cut to the item's
length, as `base.split_outputs` cuts them) while the cache stays within `max_bytes`. A batch
whose items are all cached costs no teacher forward pass; later epochs, gradual pruning's
recovery and the QAT stage all reuse the cache (one `Teacher` per job, bound to one list of
items).

The fill is canonical: an item's cached outputs depend on the item list and the fill batch
size only, never on the training order, so a job resumed from a checkpoint (which fills the
cache again) distils towards bit-identical targets. Without a cache (`max_bytes` 0, or items
past the bound) the teacher runs on each training batch as it comes, which is deterministic
too (a resumed run sees the same batches); the two differ by float rounding (about 1e-8:
the padding of a batch changes the reduction order), so a cached and an uncached run of one
spec are not bit-identical.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from worker.pipelines.tasks.base import Task, model_inputs, output_tensors, pad_outputs

FILL_BATCH_SIZE = 32


@dataclass
class CacheStats:
    enabled: bool
    max_bytes: int
    items: int = 0
    bytes: int = 0
    hits: int = 0  # batches served from the cache alone
    misses: int = 0  # batches that ran the teacher
    full: bool = False  # not every item fitted: the rest run the teacher batch by batch

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "max_bytes": self.max_bytes,
            "items": self.items,
            "bytes": self.bytes,
            "hit_batches": self.hits,
            "teacher_batches": self.misses,
            "full": self.full,
        }


class Teacher:
    def __init__(
        self, model: nn.Module, task: Task, *, max_bytes: int,
        fill_batch_size: int = FILL_BATCH_SIZE,
    ) -> None:  # fmt: skip
        self.model = model.eval()
        self.task = task
        self.fill_batch_size = fill_batch_size
        self.stats = CacheStats(enabled=max_bytes > 0, max_bytes=max_bytes)
        self._rows: dict[int, dict[str, torch.Tensor]] = {}
        self._items: Sequence[Any] | None = None

    def bind(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, device: torch.device
    ) -> None:
        """Fill the cache for `items` (once per item list; another list starts it afresh)."""
        if self._items is items:
            return
        self.free()
        self._items = items
        if not self.stats.enabled:
            return
        from worker.pipelines.inference import task_batches

        with torch.no_grad():
            for indices, batch in task_batches(
                self.task, tokenizer, items, self.fill_batch_size, max_length, device
            ):
                outs = output_tensors(self.task, self.model(**model_inputs(batch)))
                if not self._store(indices, outs, batch["attention_mask"]):
                    self.stats.full = True
                    return

    def outputs(
        self, indices: Sequence[int], batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The teacher's outputs for the batch of items `indices` (shapes as the model's)."""
        rows = [self._rows.get(i) for i in indices]
        if all(r is not None for r in rows):
            self.stats.hits += 1
            length = int(batch["input_ids"].shape[1])
            return pad_outputs(self.task, [r for r in rows if r is not None], length)
        self.stats.misses += 1
        with torch.no_grad():
            outs = output_tensors(self.task, self.model(**model_inputs(batch)))
        return {k: v.detach() for k, v in outs.items()}

    def with_hidden_states(
        self, batch: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        """The teacher's outputs and hidden states for the batch, from a forward pass (hidden
        states are never cached: every layer's, for every token, would not fit)."""
        self.stats.misses += 1
        with torch.no_grad():
            raw = self.model(**model_inputs(batch), output_hidden_states=True)
        outs = output_tensors(self.task, raw)
        return {k: v.detach() for k, v in outs.items()}, tuple(raw.hidden_states)

    def _store(
        self, indices: Sequence[int], outs: Mapping[str, torch.Tensor], mask: torch.Tensor
    ) -> bool:
        """Keep the batch's rows; False (keeping none of them) once one would not fit."""
        kept: list[tuple[int, dict[str, torch.Tensor], int]] = []
        for row, (i, n) in enumerate(zip(indices, mask.sum(dim=1).tolist(), strict=True)):
            out = {
                o.name: (outs[o.name][row, : int(n)] if o.per_token else outs[o.name][row])
                .detach()
                .clone()
                for o in self.task.outputs
            }
            kept.append((i, out, sum(t.numel() * t.element_size() for t in out.values())))
        size = sum(s for _, _, s in kept)
        if self.stats.bytes + size > self.stats.max_bytes:
            return False
        for i, out, _ in kept:
            self._rows[i] = out
        self.stats.items += len(kept)
        self.stats.bytes += size
        return True

    def free(self) -> None:
        self._rows.clear()
        self._items = None
        self.stats.items = self.stats.bytes = 0
        self.stats.full = False


def frozen_teacher(model: nn.Module, task: Task, *, max_bytes: int) -> Teacher:
    """A frozen copy of `model` (the dense model after fine-tuning) as the teacher."""
    dense = copy.deepcopy(model).eval()
    for p in dense.parameters():
        p.requires_grad_(False)
    return Teacher(dense, task, max_bytes=max_bytes)
