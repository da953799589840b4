"""The `prune` stage: the masks over the student's encoder Linear layers, and one-shot
pruning to the target (a gradual schedule prunes during `recover` instead, or here when there
is no recovery to prune during)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

from worker.pipelines import pruning as pr
from worker.pipelines.context import PipelineContext
from worker.pipelines.errors import UnsupportedSpec
from worker.pipelines.inference import evaluate_model
from worker.pipelines.stages.drop_layers import Student
from worker.pipelines.stages.load import Loaded
from worker.pipelines.stages.plan import STEP_EVAL_MAX, gradual, prunes, recovery_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruner:
    """The spec's pruning method: its config and (oBERT) gradient source."""

    config: Any
    gradients: Any


@dataclass(frozen=True)
class Pruned:
    model: nn.Module
    kept_layers: list[int] | None
    masks: pr.MaskState  # held on the model until `recover` releases it
    pruner: Pruner | None  # None when the spec does not prune
    # the primary dev metric right after each pruning step, keyed by (training step, sparsity)
    prune_metric: dict[tuple[int, float], float] = field(default_factory=dict)


class OnPruned(Protocol):
    def __call__(self, step: int, sparsity: float, speedup: float | None = None) -> None: ...


def after_prune(loaded: Loaded, pruned: Pruned, ctx: PipelineContext) -> OnPruned:
    """Records the primary dev metric (on at most STEP_EVAL_MAX examples) after a pruning
    step; its event's `prune_step` (the step's number, 1, 2, ...) marks it as a pruning
    step's (app.services.webhook_outbox: the `job.pruning_step` webhook)."""
    quick = loaded.evalset.head(STEP_EVAL_MAX)

    def on_pruned(step: int, sparsity: float, speedup: float | None = None) -> None:
        res = evaluate_model(quick, pruned.model, ctx.device)
        pruned.prune_metric[(step, sparsity)] = res.value
        extra = {} if speedup is None else {"speedup": speedup}
        ctx.reporter.step_metrics(
            {"step": step, "sparsity": sparsity, f"dev_{res.primary}": res.value,
             "prune_step": len(pruned.masks.applied), **extra}
        )  # fmt: skip
        log.info(
            "after pruning to %.3f at step %d: dev %s %.4f", sparsity, step, res.primary, res.value
        )

    return on_pruned


def _pruner(loaded: Loaded, model: nn.Module, ctx: PipelineContext) -> Pruner | None:
    spec = loaded.spec
    if not prunes(spec):
        return None
    config = pr.method_config(spec.pruning)
    grads = None
    if spec.pruning.method == "obert":
        grads = pr.gradient_source(
            model,
            loaded.tokenizer,
            loaded.train_items,
            config,
            task=loaded.task,
            max_length=spec.dataset.max_length,
            device=ctx.device,
            seed=spec.training.seed,
        )
    return Pruner(config, grads)


def stage_prune(loaded: Loaded, student: Student, ctx: PipelineContext) -> Pruned:
    from worker.pipelines.architecture import prunable_targets

    spec, model = loaded.spec, student.model
    if spec.pruning.method == "structured":  # prunes in its own stage, between recoveries
        raise ValueError("method 'structured' runs in stages.structured, not stage_prune")
    masks = pr.MaskState(prunable_targets(model))
    if prunes(spec) and not masks.targets:
        raise UnsupportedSpec(f"no prunable encoder Linear layers in {type(model).__name__}")
    pruned = Pruned(model, student.kept_layers, masks, _pruner(loaded, model, ctx))
    if pruned.pruner is None:
        return pruned
    if not gradual(spec):
        _prune_to_target(loaded, pruned, pruned.pruner, ctx)
        masks.applied.append((0, spec.pruning.sparsity))
        after_prune(loaded, pruned, ctx)(0, spec.pruning.sparsity)
    elif recovery_steps(spec, len(loaded.train_items)) == 0:
        # No training at all: prune straight to the target so the result is what was asked.
        _prune_to_target(loaded, pruned, pruned.pruner, ctx)
    return pruned


def _prune_to_target(loaded: Loaded, pruned: Pruned, pruner: Pruner, ctx: PipelineContext) -> None:
    spec = loaded.spec.pruning
    ctx.reporter.stage("prune")
    pr.prune_once(
        pruned.masks,
        spec,
        spec.sparsity,
        config=pruner.config,
        gradients=pruner.gradients,
        device=ctx.device,
        progress=ctx.reporter.step,
    )
