"""The compression pipeline, stage by stage.

load -> finetune_dense (when the model has no trained head, or always/never as asked) ->
evaluate_dense -> drop_layers (spec.layers) -> prune (one-shot; gradual pruning happens in
recover) -> recover (fine-tune with the mask held, distillation from the dense teacher when
enabled) -> quantize (dynamic_int8) or qat (quantization-aware fine-tuning, qat_int8) ->
evaluate -> measure -> export (ONNX fp32 and int8, parity with PyTorch, measured in ONNX
Runtime) -> package.

After each expensive stage (and each pruning step of a gradual run) the run state is
checkpointed under `<work_dir>/<job id>/checkpoints` (see `resume`); a redelivered job resumes
from there and the report says so in `resumed_from`.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from app.schemas.job_spec import GradualSchedule, JobSpec
from worker.pipelines import pruning as pr
from worker.pipelines import resume
from worker.pipelines.context import PipelineContext
from worker.pipelines.data import load_dataset
from worker.pipelines.errors import JobCanceled, PipelineError, UnsupportedSpec
from worker.pipelines.evaluate import EvalResult, evaluate
from worker.pipelines.layers import drop_layers
from worker.pipelines.models import load_model
from worker.pipelines.qat_stage import stage_qat
from worker.pipelines.report import package_outputs
from worker.pipelines.state import RunState
from worker.pipelines.train import (
    DistillConfig,
    HoldMask,
    TrainCallback,
    TrainConfig,
    TrainProgress,
    steps_per_epoch,
    total_steps,
    train,
)

log = logging.getLogger(__name__)

WEIGHTS = {
    "load": 1.0,
    "finetune_dense": 8.0,
    "evaluate_dense": 1.0,
    "drop_layers": 0.2,
    "prune": 2.0,
    "recover": 8.0,
    "quantize": 0.5,
    "qat": 6.0,
    "evaluate": 1.0,
    "measure": 2.0,
    "export": 2.0,
    "package": 1.0,
}
STEP_EVAL_MAX = 512  # dev examples evaluated after each pruning step (for the report's plot)


def train_config(spec: JobSpec, *, recovery: bool) -> TrainConfig:
    t = spec.training
    return TrainConfig(
        epochs=t.recovery_epochs if recovery else t.epochs,
        max_steps=t.recovery_max_steps if recovery else t.max_steps,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        max_length=spec.dataset.max_length,
    )


def prunes(spec: JobSpec) -> bool:
    return spec.pruning.method != "none"


def recovery_steps(spec: JobSpec, n_train: int) -> int:
    """Recovery length; a gradual schedule extends it to cover the schedule."""
    cfg = train_config(spec, recovery=True)
    steps = total_steps(n_train, cfg)
    sched = spec.pruning.schedule
    if prunes(spec) and isinstance(sched, GradualSchedule):
        steps = max(steps, pr.schedule_steps(sched, steps_per_epoch(n_train, cfg.batch_size)))
    return steps


def plan(spec: JobSpec, *, finetune: bool, n_train: int) -> list[tuple[str, float]]:
    names = ["load"]
    if finetune:
        names.append("finetune_dense")
    names.append("evaluate_dense")
    if spec.layers is not None:
        names.append("drop_layers")
    if prunes(spec) and not isinstance(spec.pruning.schedule, GradualSchedule):
        names.append("prune")
    if (prunes(spec) or spec.layers is not None) and recovery_steps(spec, n_train) > 0:
        names.append("recover")
    if spec.quantization.method == "dynamic_int8":
        names.append("quantize")
    if spec.quantization.method == "qat_int8":
        names.append("qat")
    names += ["evaluate", "measure", "export", "package"]
    return [(n, WEIGHTS[n]) for n in names]


def wants_finetune(spec: JobSpec, has_head: bool) -> bool:
    mode = spec.training.finetune_dense
    return mode == "always" or (mode == "auto" and not has_head)


def check_supported(spec: JobSpec) -> None:
    if spec.quantization.method not in ("none", "dynamic_int8", "qat_int8"):
        raise UnsupportedSpec(f"quantization {spec.quantization.method!r} is not supported yet")


def _evaluate(
    state: RunState, ctx: PipelineContext, model: nn.Module, device: torch.device
) -> EvalResult:
    assert state.data is not None and state.loaded is not None
    return evaluate(
        model,
        state.loaded.tokenizer,
        state.data.dev,
        state.data.label_names,
        batch_size=state.spec.training.eval_batch_size,
        max_length=state.spec.dataset.max_length,
        device=device,
    )


def _after_prune(state: RunState, ctx: PipelineContext) -> Any:
    """Records dev accuracy (on at most STEP_EVAL_MAX examples) after a pruning step."""

    def on_pruned(step: int, sparsity: float) -> None:
        assert state.model is not None and state.data is not None and state.loaded is not None
        was_training = state.model.training
        res = evaluate(
            state.model,
            state.loaded.tokenizer,
            state.data.dev[:STEP_EVAL_MAX],
            state.data.label_names,
            batch_size=state.spec.training.eval_batch_size,
            max_length=state.spec.dataset.max_length,
            device=ctx.device,
        )
        state.model.train(was_training)
        state.prune_accuracy[(step, sparsity)] = res.accuracy
        ctx.reporter.step_metrics(
            {"step": step, "sparsity": sparsity, "dev_accuracy": res.accuracy}
        )
        log.info(
            "after pruning to %.3f at step %d: dev accuracy %.4f", sparsity, step, res.accuracy
        )

    return on_pruned


def _progress(ctx: PipelineContext) -> Any:
    def on_step(done: int, total: int) -> None:
        ctx.reporter.step(done / max(1, total))

    return on_step


def stage_load(state: RunState, ctx: PipelineContext) -> None:
    spec = state.spec
    ctx.reporter.stage("load")
    state.data = load_dataset(
        spec.dataset,
        data_dir=ctx.settings.data_dir,
        lookup=ctx.uploads,
        store=ctx.store,
        seed=spec.training.seed,
    )
    ctx.reporter.step(0.3)
    state.loaded = load_model(
        spec.model,
        state.data.label_names,
        settings=ctx.settings,
        lookup=ctx.uploads,
        store=ctx.store,
        device=ctx.device,
        seed=spec.training.seed,
    )
    state.model = state.loaded.model
    state.finetuned = wants_finetune(spec, state.loaded.has_trained_head)
    ctx.reporter.start(plan(spec, finetune=state.finetuned, n_train=len(state.data.train)))
    ctx.reporter.metrics(
        {
            "train_examples": len(state.data.train),
            "dev_examples": len(state.data.dev),
            "num_labels": state.data.num_labels,
            "model_has_trained_head": state.loaded.has_trained_head,
            "device": str(ctx.device),
        }
    )


def stage_dense(state: RunState, ctx: PipelineContext) -> None:
    assert state.data is not None and state.loaded is not None and state.model is not None
    if state.finetuned:
        ctx.reporter.stage("finetune_dense")
        res = train(
            state.model,
            state.loaded.tokenizer,
            state.data.train,
            train_config(state.spec, recovery=False),
            ctx.device,
            on_step=_progress(ctx),
        )
        state.steps["finetune_dense"] = res.steps
    ctx.reporter.stage("evaluate_dense")
    state.dense_eval = _evaluate(state, ctx, state.model, ctx.device)
    state.dense = copy.deepcopy(state.model).eval()
    for p in state.dense.parameters():
        p.requires_grad_(False)
    ctx.reporter.metrics(
        {"dense_accuracy": state.dense_eval.accuracy, "dense_macro_f1": state.dense_eval.macro_f1}
    )


def stage_compress(state: RunState, ctx: PipelineContext) -> None:
    from worker.compression import encoder_linear_targets

    spec = state.spec
    assert state.data is not None and state.loaded is not None and state.model is not None
    if spec.layers is not None:
        ctx.reporter.stage("drop_layers")
        state.model, state.kept_layers = drop_layers(state.model, spec.layers.keep)
        state.model.to(ctx.device)
    tokenizer, train_set = state.loaded.tokenizer, state.data.train
    state.masks = pr.MaskState(encoder_linear_targets(state.model))
    if prunes(spec) and not state.masks.targets:
        raise UnsupportedSpec(f"no prunable encoder Linear layers in {type(state.model).__name__}")
    config = pr.method_config(spec.pruning) if prunes(spec) else None
    grads = None
    if spec.pruning.method == "obert":
        grads = pr.gradient_source(
            state.model,
            tokenizer,
            train_set,
            config,
            max_length=spec.dataset.max_length,
            device=ctx.device,
            seed=spec.training.seed,
        )
    gradual = isinstance(spec.pruning.schedule, GradualSchedule)

    def prune_to_target() -> None:
        assert state.masks is not None
        ctx.reporter.stage("prune")
        pr.prune_once(
            state.masks,
            spec.pruning,
            spec.pruning.sparsity,
            config=config,
            gradients=grads,
            device=ctx.device,
            progress=ctx.reporter.step,
        )

    if prunes(spec) and not gradual:
        prune_to_target()
        state.masks.applied.append((0, spec.pruning.sparsity))
        _after_prune(state, ctx)(0, spec.pruning.sparsity)
    steps = recovery_steps(spec, len(train_set))
    if (prunes(spec) or spec.layers is not None) and steps > 0:
        ctx.reporter.stage("recover")
        callbacks: list[TrainCallback] = []
        progress = TrainProgress()
        lr_restarts: list[int] = []
        if prunes(spec) and gradual:
            cfg_t = train_config(spec, recovery=True)
            assert isinstance(spec.pruning.schedule, GradualSchedule)
            end = min(
                steps,
                pr.schedule_steps(
                    spec.pruning.schedule, steps_per_epoch(len(train_set), cfg_t.batch_size)
                ),
            )
            after_prune = _after_prune(state, ctx)

            def on_pruned(step: int, sparsity: float) -> None:
                after_prune(step, sparsity)
                resume.save_prune_step(state, ctx, progress)

            gradual_cb = pr.gradual_callback(
                state.masks,
                spec.pruning,
                end,
                config=config,
                gradients=grads,
                device=ctx.device,
                on_pruned=on_pruned,
            )
            if spec.pruning.schedule.lr_rewind:
                lr_restarts = [at for at, _ in gradual_cb.pending]
            progress = resume.restore_prune_step(state, ctx, gradual_cb)
            callbacks.append(gradual_cb)
        elif state.masks.hold is not None:
            callbacks.append(HoldMask(state.masks))
        dist = spec.distillation
        res = train(
            state.model,
            tokenizer,
            train_set,
            train_config(spec, recovery=True),
            ctx.device,
            callbacks=callbacks,
            on_step=_progress(ctx),
            steps=steps,
            teacher=state.dense if dist.enabled else None,
            distill=DistillConfig(dist.hardness, dist.temperature) if dist.enabled else None,
            progress=progress,
            lr_restarts=lr_restarts,
        )
        state.steps["recover"] = res.steps
    elif prunes(spec) and gradual:
        # No training at all: prune straight to the target so the result is what was asked.
        prune_to_target()
    state.masks.release()
    state.model.eval()


def stage_quantize(state: RunState, ctx: PipelineContext) -> None:
    from worker.compression import quantize_dynamic_int8

    if state.spec.quantization.method != "dynamic_int8":
        return
    assert state.model is not None
    ctx.reporter.stage("quantize")
    state.qmodel = quantize_dynamic_int8(state.model)  # a CPU copy


def stage_evaluate(state: RunState, ctx: PipelineContext) -> None:
    assert state.model is not None
    ctx.reporter.stage("evaluate")
    state.eval = _evaluate(state, ctx, state.model, ctx.device)
    if state.qmodel is not None:
        ctx.reporter.step(0.5)
        state.int8_eval = _evaluate(state, ctx, state.qmodel, torch.device("cpu"))
    ctx.reporter.metrics(
        {
            "accuracy": state.eval.accuracy,
            "macro_f1": state.eval.macro_f1,
            **({"int8_accuracy": state.int8_eval.accuracy} if state.int8_eval else {}),
        }
    )


def stage_qat_int8(state: RunState, ctx: PipelineContext) -> None:
    if state.spec.quantization.method != "qat_int8":
        return
    assert state.data is not None
    cfg = train_config(state.spec, recovery=True)
    steps = state.spec.quantization.qat_steps
    if steps is None:
        steps = total_steps(len(state.data.train), cfg)
    stage_qat(state, ctx, cfg, steps, _progress(ctx))


def run_pipeline(spec: JobSpec, ctx: PipelineContext) -> dict[str, Any]:
    """Run every stage (resuming after the last checkpointed one of this job, if any);
    returns the summary metrics (also written to the job as it goes)."""
    check_supported(spec)
    state = RunState(spec, checkpoints=resume.checkpoints_for(spec, ctx))
    try:
        return _run_stages(state, ctx)
    except (PipelineError, JobCanceled):
        # terminal: the job will not be redelivered, so its checkpoints are of no use
        if state.checkpoints is not None:
            state.checkpoints.clear()
        raise


def _run_stages(state: RunState, ctx: PipelineContext) -> dict[str, Any]:
    spec = state.spec
    ctx.reporter.start(plan(spec, finetune=spec.training.finetune_dense != "never", n_train=1))
    stage_load(state, ctx)
    resume.restore_stages(state, ctx)
    if "dense" not in state.completed:
        stage_dense(state, ctx)
        resume.save_stage(state, ctx, "dense")
    else:
        assert state.dense_eval is not None
        ctx.reporter.metrics({"dense_accuracy": state.dense_eval.accuracy})
    if "compress" not in state.completed:
        stage_compress(state, ctx)
        resume.save_stage(state, ctx, "compress")
    if "qat" not in state.completed and spec.quantization.method == "qat_int8":
        stage_qat_int8(state, ctx)
        resume.save_stage(state, ctx, "qat")
    stage_quantize(state, ctx)
    stage_evaluate(state, ctx)
    summary = package_outputs(state, ctx)
    if state.checkpoints is not None:
        state.checkpoints.clear()
    return summary
