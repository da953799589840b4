"""Glue between the job spec and `worker.compression`: configs, gradients, masks, schedules."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from app.schemas.job_spec import GradualSchedule, PruningSpec
from worker.pipelines.batches import iter_batches, model_inputs
from worker.pipelines.data import Example
from worker.pipelines.gradual import GradualPruning, prune_points

DEFAULT_GRAD_BATCH = 8


def classification_loss(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    logits = model(**model_inputs(dict(batch))).logits
    return F.cross_entropy(logits, batch["labels"])


def method_config(spec: PruningSpec) -> Any:
    from worker.compression import MagnitudeConfig, OBertConfig

    if spec.method == "obert":
        o = spec.obert
        kwargs: dict[str, Any] = {}
        if o is not None:
            for name in (
                "num_grads",
                "block_size",
                "damp",
                "num_recomputations",
                "grad_batch_size",
            ):
                value = getattr(o, name)
                if value is not None:
                    kwargs[name] = value
        return OBertConfig(**kwargs)
    return MagnitudeConfig()


def gradient_source(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    config: Any,
    *,
    max_length: int,
    device: torch.device,
    seed: int,
) -> Any:
    """Batches for oBERT's empirical Fisher: each call is one pass over a fresh seeded shuffle
    of the train set (the compression package cycles it when it needs more gradients)."""
    from worker.compression import GradientSource

    batch_size = int(getattr(config, "grad_batch_size", None) or DEFAULT_GRAD_BATCH)
    rounds = [0]

    def batches() -> Iterable[Mapping[str, torch.Tensor]]:
        order = list(range(len(examples)))
        random.Random(seed * 7919 + rounds[0]).shuffle(order)
        rounds[0] += 1
        return iter_batches(tokenizer, examples, batch_size, max_length, device, order)

    return GradientSource(model, batches, classification_loss)


@dataclass
class MaskState:
    """The current masks and their hold on the model's encoder Linear layers."""

    targets: dict[str, nn.Linear]
    masks: dict[str, torch.Tensor] | None = None
    hold: Any = None
    applied: list[tuple[int, float]] = field(default_factory=list)

    def reapply(self) -> None:
        if self.hold is not None:
            self.hold.reapply()

    def set(self, masks: dict[str, torch.Tensor]) -> None:
        from worker.compression import hold_masks

        self.masks = masks
        if self.hold is None:
            self.hold = hold_masks(self.targets, masks)
        else:
            self.hold.update(masks)

    def release(self) -> None:
        if self.hold is not None:
            self.hold.reapply()
            self.hold.remove()
            self.hold = None


def prune_once(
    state: MaskState,
    spec: PruningSpec,
    sparsity: float,
    *,
    config: Any,
    gradients: Any,
    device: torch.device,
    progress: Callable[[float], None] | None = None,
) -> None:
    from worker.compression import prune

    masks = prune(
        config,
        state.targets,
        sparsity,
        masks=state.masks,
        structure=spec.structure,
        scope=spec.scope,
        gradients=gradients,
        device=device,
        progress=progress,
    )
    state.set(masks)


def schedule_steps(schedule: GradualSchedule, steps_per_epoch: int) -> int:
    if schedule.steps is not None:
        return schedule.steps
    return max(1, math.ceil((schedule.epochs or 0.0) * steps_per_epoch))


def gradual_callback(
    state: MaskState,
    spec: PruningSpec,
    end: int,
    *,
    config: Any,
    gradients: Any,
    device: torch.device,
    on_pruned: Callable[[int, float], None] | None = None,
) -> GradualPruning:
    from worker.compression import cubic_sparsity

    assert isinstance(spec.schedule, GradualSchedule)
    points = prune_points(
        end, spec.schedule.pruning_steps, spec.schedule.init_sparsity, spec.sparsity, cubic_sparsity
    )

    def prune_to(sparsity: float) -> None:
        prune_once(state, spec, sparsity, config=config, gradients=gradients, device=device)

    cb = GradualPruning(points, prune_to, state.reapply, on_pruned)
    state.applied = cb.applied
    return cb
