"""The `recover` stage: fine-tune the pruned student with the mask held (gradual pruning runs
here, as a training callback), distilling from the dense teacher when enabled; it closes the
compression group (drop_layers, prune, recover), checkpointed together as `compress`.

After each pruning step of a gradual run it writes a `prune_step` checkpoint (the model, the
masks, the optimizer and scheduler states, mid-training); a redelivered job restarts the
training from the last one, and only the remaining pruning steps run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from app.schemas.job_spec import GradualSchedule
from worker.pipelines import pruning as pr
from worker.pipelines.checkpoint import OPTIMIZER, SCHEDULER, rng_state
from worker.pipelines.context import PipelineContext
from worker.pipelines.gradual import GradualPruning
from worker.pipelines.stages.checkpoints import PRUNE_STEP, JobCheckpoints, Part, Saved
from worker.pipelines.stages.dense import Dense
from worker.pipelines.stages.drop_layers import shrink
from worker.pipelines.stages.load import Loaded
from worker.pipelines.stages.plan import (
    gradual,
    on_step,
    recovers,
    recovery_steps,
    train_config,
)
from worker.pipelines.stages.prune import Pruned, Pruner, after_prune
from worker.pipelines.telemetry import StepSample
from worker.pipelines.train import (
    HoldMask,
    TrainCallback,
    TrainProgress,
    distill_config,
    steps_per_epoch,
    train,
)

log = logging.getLogger(__name__)

MODEL, MASKS = "model", "masks"  # tensor groups


@dataclass(frozen=True)
class Recovered:
    """The compressed model (masks released), and how it was made."""

    model: nn.Module
    kept_layers: list[int] | None
    masks: dict[str, Tensor] | None  # the final masks; None when nothing was pruned
    applied: list[tuple[int, float]]  # pruning steps as (training step, sparsity)
    prune_metric: dict[tuple[int, float], float] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)  # {"recover": n} when it trained
    structured: dict[str, Any] | None = None  # method structured's record (stages.structured)


def stage_recover(
    loaded: Loaded, dense: Dense, pruned: Pruned, ck: JobCheckpoints, ctx: PipelineContext
) -> Recovered:
    spec = loaded.spec
    steps: dict[str, int] = {}
    if recovers(spec, len(loaded.train_items)):
        ctx.reporter.stage("recover")
        callbacks: list[TrainCallback] = []
        progress = TrainProgress()
        lr_restarts: list[int] = []
        if pruned.pruner is not None and gradual(spec):
            cb = _gradual(loaded, pruned, pruned.pruner, ck, ctx, progress)
            schedule = spec.pruning.schedule
            if isinstance(schedule, GradualSchedule) and schedule.lr_rewind:
                lr_restarts = [at for at, _ in cb.pending]
            restore_prune_step(ck, pruned, cb, progress, ctx)
            callbacks.append(cb)
        elif pruned.masks.hold is not None:
            callbacks.append(HoldMask(pruned.masks))
        dist = spec.distillation
        res = train(
            pruned.model,
            loaded.tokenizer,
            loaded.train_items,
            train_config(spec, recovery=True),
            ctx.device,
            task=loaded.task,
            callbacks=callbacks,
            on_step=on_step(ctx),
            steps=recovery_steps(spec, len(loaded.train_items)),
            teacher=dense.teacher if dist.enabled else None,
            distill=distill_config(spec, pruned.kept_layers),
            progress=progress,
            lr_restarts=lr_restarts,
            telemetry=ctx.reporter.train_meter(),
        )
        steps["recover"] = res.steps
    pruned.masks.release()
    pruned.model.eval()
    return Recovered(
        pruned.model,
        pruned.kept_layers,
        pruned.masks.masks,
        list(pruned.masks.applied),
        dict(pruned.prune_metric),
        steps,
    )


def recover_held(
    loaded: Loaded,
    dense: Dense,
    pruned: Pruned,
    steps: int,
    ctx: PipelineContext,
    *,
    seed: int,
    on_step: Callable[[int, int], None],
    telemetry: Callable[[StepSample], None] | None = None,
) -> None:
    """`steps` recovery steps with the masks held (distilling as the spec says), from a fresh
    optimizer and schedule: method structured's recovery after each of its pruning steps."""
    spec, dist = loaded.spec, loaded.spec.distillation
    train(
        pruned.model, loaded.tokenizer, loaded.train_items,
        dataclasses.replace(train_config(spec, recovery=True), seed=seed), ctx.device,
        task=loaded.task, callbacks=[HoldMask(pruned.masks)], on_step=on_step, steps=steps,
        teacher=dense.teacher if dist.enabled else None,
        distill=distill_config(spec, pruned.kept_layers),
        telemetry=telemetry,
    )  # fmt: skip


def _gradual(
    loaded: Loaded,
    pruned: Pruned,
    pruner: Pruner,
    ck: JobCheckpoints,
    ctx: PipelineContext,
    progress: TrainProgress,
) -> GradualPruning:
    """The gradual-pruning callback; after each step it scores the model and checkpoints."""
    spec = loaded.spec
    assert isinstance(spec.pruning.schedule, GradualSchedule)
    cfg = train_config(spec, recovery=True)
    n_train = len(loaded.train_items)
    end = min(
        recovery_steps(spec, n_train),
        pr.schedule_steps(spec.pruning.schedule, steps_per_epoch(n_train, cfg.batch_size)),
    )
    score = after_prune(loaded, pruned, ctx)

    def on_pruned(step: int, sparsity: float) -> None:
        score(step, sparsity)
        save_prune_step(ck, pruned, progress, ctx)

    return pr.gradual_callback(
        pruned.masks,
        spec.pruning,
        end,
        config=pruner.config,
        gradients=pruner.gradients,
        device=ctx.device,
        on_pruned=on_pruned,
    )


def save_prune_step(
    ck: JobCheckpoints, pruned: Pruned, progress: TrainProgress, ctx: PipelineContext
) -> None:
    """The `prune_step` checkpoint, right after a pruning step, mid-training."""
    if ck.store is None:
        return
    tensors: dict[str, Any] = {MODEL: pruned.model.state_dict(), "rng": rng_state()[0]}
    if pruned.masks.masks:
        tensors[MASKS] = pruned.masks.masks
    states: dict[str, Any] = {}
    if progress.optimizer is not None:
        states[OPTIMIZER] = progress.optimizer.state_dict()
    if progress.scheduler is not None:
        states[SCHEDULER] = progress.scheduler.state_dict()
    meta = {
        "stage": "recover",
        "completed": list(ck.completed),
        "prune_step": len(pruned.masks.applied),
        "train_step": progress.step,
        "applied": [list(a) for a in pruned.masks.applied],
        "prune_metric": _metric_meta(pruned.prune_metric),
        **ck.common_meta(ctx),
    }
    ck.store.save(PRUNE_STEP, meta, tensors, states)


def restore_prune_step(
    ck: JobCheckpoints,
    pruned: Pruned,
    callback: GradualPruning,
    progress: TrainProgress,
    ctx: PipelineContext,
) -> None:
    """Restore the last `prune_step` checkpoint (if any) into the model, the masks, the
    callback (its done steps) and `progress` (where training restarts)."""
    cp = ck.store.latest(PRUNE_STEP) if ck.store is not None else None
    if cp is None:
        return
    meta = cp.meta
    ck.restore_common(cp, ctx)
    pruned.prune_metric.update(_metric_of(meta["prune_metric"]))
    pruned.model.load_state_dict(cp.tensors(MODEL))
    masks = cp.tensors(MASKS)
    if masks:
        pruned.masks.set({k: v.to(ctx.device) for k, v in masks.items()})
    callback.restore(_applied_of(meta["applied"]))
    ck.resumed_from = {
        "stage": meta["stage"],
        "completed": list(ck.completed),
        "prune_step": int(meta["prune_step"]),
        "train_step": int(meta["train_step"]),
    }
    log.info("resuming recover at training step %d", meta["train_step"])
    progress.step = int(meta["train_step"])
    progress.optimizer_state = cp.torch_state(OPTIMIZER)
    progress.scheduler_state = cp.torch_state(SCHEDULER)


def save_recovered(rec: Recovered) -> Part:
    meta = {
        "kept_layers": rec.kept_layers,
        "applied": [list(a) for a in rec.applied],
        "prune_metric": _metric_meta(rec.prune_metric),
        "steps": rec.steps,
        "structured": rec.structured,
    }
    tensors: dict[str, Any] = {MODEL: rec.model.state_dict()}
    if rec.masks:
        tensors[MASKS] = rec.masks
    return Part(meta, tensors)


def restore_recovered(
    loaded: Loaded, dense: Dense, saved: Saved, ctx: PipelineContext
) -> Recovered:
    """The student rebuilt from the dense model (layers dropped as before) and the saved
    compressed weights and masks loaded into it."""
    student = shrink(loaded, dense.model, ctx)
    student.model.load_state_dict(saved.tensors(MODEL))
    student.model.eval()
    meta = saved.meta
    return Recovered(
        student.model,
        student.kept_layers,
        saved.tensors(MASKS) or None,
        _applied_of(meta["applied"]),
        _metric_of(meta["prune_metric"]),
        {k: int(v) for k, v in meta["steps"].items()},
        meta.get("structured"),
    )


def _metric_meta(metric: dict[tuple[int, float], float]) -> list[list[float]]:
    return [[s, sp, v] for (s, sp), v in metric.items()]


def _metric_of(rows: list[list[Any]]) -> dict[tuple[int, float], float]:
    return {(int(s), float(sp)): float(v) for s, sp, v in rows}


def _applied_of(rows: list[list[Any]]) -> list[tuple[int, float]]:
    return [(int(s), float(sp)) for s, sp in rows]
