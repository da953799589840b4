"""Glue between the job spec and `worker.compression`: configs, gradients, masks, schedules."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from app.schemas.job_spec import GradualSchedule, PruningSpec
from worker.pipelines.gradual import GradualPruning, prune_points
from worker.pipelines.inference import task_batches
from worker.pipelines.tasks.base import Task, model_inputs, output_tensors

DEFAULT_GRAD_BATCH = 8


def task_loss(task: Task) -> Callable[[nn.Module, Mapping[str, torch.Tensor]], torch.Tensor]:
    """The task's own loss of `model` on a batch: what oBERT's empirical Fisher differentiates."""

    def loss(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return task.loss(output_tensors(task, model(**model_inputs(batch))), batch)

    return loss


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
    examples: Sequence[Any],
    config: Any,
    *,
    task: Task,
    max_length: int,
    device: torch.device,
    seed: int,
) -> Any:
    """Batches for oBERT's empirical Fisher from the task's training items `examples`: each
    call is one pass over a fresh seeded shuffle of them (the compression package cycles it
    when it needs more gradients); the loss is the task's own."""
    from worker.compression import GradientSource

    batch_size = int(getattr(config, "grad_batch_size", None) or DEFAULT_GRAD_BATCH)
    rounds = [0]

    def batches() -> Iterable[Mapping[str, torch.Tensor]]:
        order = list(range(len(examples)))
        random.Random(seed * 7919 + rounds[0]).shuffle(order)
        rounds[0] += 1
        return (
            batch
            for _, batch in task_batches(
                task, tokenizer, examples, batch_size, max_length, device, order
            )
        )

    return GradientSource(model, batches, task_loss(task))


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
