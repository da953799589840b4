"""Saving the run state after each stage and pruning step, and restoring it on redelivery.

Stage checkpoints (kind `stage`) are written after `dense` (fine-tune + evaluate), `compress`
(drop layers, prune, recover) and `qat`; a pruning-step checkpoint (kind `prune_step`) after
each pruning step of a gradual run, mid-training, with the optimizer and scheduler states.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from worker.pipelines.checkpoint import (
    OPTIMIZER,
    SCHEDULER,
    Checkpoint,
    Checkpoints,
    rng_state,
    set_rng_state,
    spec_digest,
)
from worker.pipelines.evaluate import EvalResult
from worker.pipelines.train import TrainProgress

if TYPE_CHECKING:
    from app.schemas.job_spec import JobSpec
    from worker.pipelines.context import PipelineContext
    from worker.pipelines.gradual import GradualPruning
    from worker.pipelines.state import RunState

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


def checkpoints_for(spec: JobSpec, ctx: PipelineContext) -> Checkpoints | None:
    """`<work_dir>/<job id>/checkpoints`, or None without a job id."""
    if not ctx.job_id:
        return None
    root = ctx.settings.work_dir / ctx.job_id / CHECKPOINTS
    return Checkpoints(root, spec_digest(spec.model_dump_json()))


def _common_meta(state: RunState, ctx: PipelineContext) -> dict[str, Any]:
    _, py_rng = rng_state()
    # the stage still open (timed so far; overwritten when it really closes)
    ctx.reporter._close_stage()
    return {
        "completed": list(state.completed),
        "finetuned": state.finetuned,
        "steps": dict(state.steps),
        "kept_layers": state.kept_layers,
        "dense_eval": state.dense_eval.as_dict() if state.dense_eval else None,
        "applied": [list(a) for a in state.masks.applied] if state.masks else [],
        "prune_accuracy": [[s, sp, acc] for (s, sp), acc in state.prune_accuracy.items()],
        "rng": py_rng,
        "stage_seconds": dict(ctx.reporter.stage_seconds),
        "report_so_far": {
            "dense_accuracy": state.dense_eval.accuracy if state.dense_eval else None,
            "training_steps": dict(state.steps),
        },
    }


def _tensors(state: RunState) -> dict[str, Any]:
    torch_rng, _ = rng_state()
    assert state.model is not None and state.dense is not None
    out: dict[str, Any] = {
        "model": state.model.state_dict(),
        "dense": state.dense.state_dict(),
        "rng": torch_rng,
    }
    if state.masks is not None and state.masks.masks:
        out["masks"] = state.masks.masks
    if state.qat_model is not None:
        out["qat"] = state.qat_model.state_dict()
    return out


def save_stage(state: RunState, ctx: PipelineContext, stage: str) -> None:
    state.completed.append(stage)
    ck = state.checkpoints
    if ck is None:
        return
    ck.save("stage", {"stage": stage, **_common_meta(state, ctx)}, _tensors(state))
    if stage == "compress":
        ck.drop("prune_step")


def save_prune_step(state: RunState, ctx: PipelineContext, progress: TrainProgress) -> None:
    ck = state.checkpoints
    if ck is None or state.model is None or state.masks is None:
        return
    torch_rng, _ = rng_state()
    tensors: dict[str, Any] = {"model": state.model.state_dict(), "rng": torch_rng}
    if state.masks.masks:
        tensors["masks"] = state.masks.masks
    states: dict[str, Any] = {}
    if progress.optimizer is not None:
        states[OPTIMIZER] = progress.optimizer.state_dict()
    if progress.scheduler is not None:
        states[SCHEDULER] = progress.scheduler.state_dict()
    meta = {
        "stage": "recover",
        "prune_step": len(state.masks.applied),
        "train_step": progress.step,
        **_common_meta(state, ctx),
    }
    ck.save("prune_step", meta, tensors, states)


def _restore_common(state: RunState, ctx: PipelineContext, cp: Checkpoint) -> None:
    meta = cp.meta
    state.steps = dict(meta["steps"])
    state.prune_accuracy = {(int(s), float(sp)): float(a) for s, sp, a in meta["prune_accuracy"]}
    set_rng_state(cp.tensors("rng"), meta["rng"])
    for name, secs in meta["stage_seconds"].items():
        ctx.reporter.stage_seconds.setdefault(name, secs)


def restore_stages(state: RunState, ctx: PipelineContext) -> None:
    """Restore the last stage checkpoint into `state` (after `load`); sets `state.completed`."""
    from worker.compression import encoder_linear_targets
    from worker.pipelines import pruning as pr
    from worker.pipelines.layers import drop_layers
    from worker.pipelines.qat_stage import finish, prepare

    cp = state.checkpoints.latest("stage") if state.checkpoints else None
    if cp is None:
        return
    assert state.model is not None
    meta = cp.meta
    _restore_common(state, ctx, cp)
    state.finetuned = bool(meta["finetuned"])
    state.dense_eval = EvalResult(**meta["dense_eval"])
    state.model.load_state_dict(cp.tensors("dense"))
    state.dense = copy.deepcopy(state.model).eval()
    for p in state.dense.parameters():
        p.requires_grad_(False)
    state.completed = list(meta["completed"])
    if "compress" in state.completed:
        if state.spec.layers is not None:
            state.model, state.kept_layers = drop_layers(state.model, state.spec.layers.keep)
            state.model.to(ctx.device)
        state.model.load_state_dict(cp.tensors("model"))
        state.model.eval()
        state.masks = pr.MaskState(encoder_linear_targets(state.model))
        state.masks.masks = cp.tensors("masks") or None
        state.masks.applied = [(int(s), float(sp)) for s, sp in meta["applied"]]
        if "qat" in state.completed:
            qat_model = prepare(state.model).to(ctx.device)
            qat_model.load_state_dict(cp.tensors("qat"))
            finish(state, qat_model)
    state.resumed_from = {"stage": meta["stage"], "completed": list(state.completed)}
    log.info("resuming after stage %s", meta["stage"])


def restore_prune_step(
    state: RunState, ctx: PipelineContext, callback: GradualPruning
) -> TrainProgress:
    """Restore the last pruning-step checkpoint (if any) of the `recover` stage."""
    cp = state.checkpoints.latest("prune_step") if state.checkpoints else None
    if cp is None or state.masks is None or state.model is None:
        return TrainProgress()
    meta = cp.meta
    _restore_common(state, ctx, cp)
    state.model.load_state_dict(cp.tensors("model"))
    masks = cp.tensors("masks")
    if masks:
        state.masks.set({k: v.to(ctx.device) for k, v in masks.items()})
    callback.restore([(int(s), float(sp)) for s, sp in meta["applied"]])
    state.resumed_from = {
        "stage": meta["stage"],
        "completed": list(state.completed),
        "prune_step": int(meta["prune_step"]),
        "train_step": int(meta["train_step"]),
    }
    log.info("resuming recover at training step %d", meta["train_step"])
    return TrainProgress(
        step=int(meta["train_step"]),
        optimizer_state=cp.torch_state(OPTIMIZER),
        scheduler_state=cp.torch_state(SCHEDULER),
    )
