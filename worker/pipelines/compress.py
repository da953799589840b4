"""The compression pipeline: the orchestrator that runs the stages (`worker.pipelines.stages`)
in order, each stage's typed output feeding the next.

load -> finetune_dense (when the model has no trained head, or always/never as asked) ->
evaluate_dense -> drop_layers (spec.layers) -> prune (one-shot; gradual pruning happens in
recover) -> recover (fine-tune with the mask held, distillation from the dense teacher when
enabled; method structured runs `stages.structured` in place of prune and recover, pruning
steps and recoveries interleaved) -> quantize (dynamic_int8) or qat (quantization-aware
fine-tuning, qat_int8) -> evaluate -> measure -> export (ONNX fp32 and int8, parity with
PyTorch, measured in ONNX Runtime) -> package.

Three stages are checkpointed under `<work_dir>/<job id>/checkpoints`: `dense` (fine-tune and
evaluate), `compress` (drop layers, prune, recover; `recover` also checkpoints after each
pruning step of a gradual run) and `qat`. Each saves and restores its own part
(`stages.checkpoints.JobCheckpoints.resume`), so a redelivered job restores the stages that
completed and runs the rest; the report says so in `resumed_from`. The stages never import
this module.
"""

from __future__ import annotations

import time
from typing import Any

from app.schemas.job_spec import JobSpec
from worker.pipelines.context import PipelineContext
from worker.pipelines.errors import JobCanceled, PipelineError
from worker.pipelines.export_stage import export_stage
from worker.pipelines.report import Outcome, measure_stage, package_outputs
from worker.pipelines.stages.checkpoints import JobCheckpoints, checkpoints_for
from worker.pipelines.stages.dense import Dense, restore_dense, save_dense, stage_dense
from worker.pipelines.stages.drop_layers import stage_drop_layers
from worker.pipelines.stages.evaluate import stage_evaluate
from worker.pipelines.stages.load import Loaded, stage_load
from worker.pipelines.stages.plan import (
    STEP_EVAL_MAX,
    WEIGHTS,
    check_supported,
    plan,
    recovery_steps,
    train_config,
    wants_finetune,
)
from worker.pipelines.stages.prune import stage_prune
from worker.pipelines.stages.qat import restore_qat, save_qat, stage_qat
from worker.pipelines.stages.quantize import Quantized, stage_quantize
from worker.pipelines.stages.recover import (
    Recovered,
    restore_recovered,
    save_recovered,
    stage_recover,
)
from worker.pipelines.stages.structured import stage_structured
from worker.pipelines.tasks import get_task

__all__ = [
    "STEP_EVAL_MAX",
    "WEIGHTS",
    "plan",
    "recovery_steps",
    "run_pipeline",
    "train_config",
    "wants_finetune",
]


def run_pipeline(spec: JobSpec, ctx: PipelineContext) -> dict[str, Any]:
    """Run every stage (restoring those a checkpoint of this job holds); returns the summary
    metrics (also written to the job as it goes)."""
    check_supported(spec)
    wall_start = time.monotonic()
    ck = JobCheckpoints(checkpoints_for(spec, ctx))
    try:
        return _run_stages(spec, ck, ctx, wall_start)
    except (PipelineError, JobCanceled):
        # terminal: the job will not be redelivered, so its checkpoints are of no use
        ck.clear()
        raise


def _run_stages(
    spec: JobSpec, ck: JobCheckpoints, ctx: PipelineContext, wall_start: float
) -> dict[str, Any]:
    ctx.reporter.start(plan(spec, finetune=spec.training.finetune_dense != "never", n_train=1))
    loaded = stage_load(spec, get_task(spec.task), ctx)
    ck.open(ctx)
    dense = ck.resume(
        "dense",
        lambda: stage_dense(loaded, ctx),
        save_dense,
        lambda saved: restore_dense(loaded, saved, ctx),
        ctx,
    )
    compressed = ck.resume(
        "compress",
        lambda: _compress(loaded, dense, ck, ctx),
        save_recovered,
        lambda saved: restore_recovered(loaded, dense, saved, ctx),
        ctx,
    )
    quantized = _quantize(loaded, dense, compressed, ck, ctx)
    evaluated = stage_evaluate(loaded, quantized, ctx)
    out = Outcome(loaded, dense, compressed, quantized, evaluated, ck.resumed_from, wall_start)
    measured = measure_stage(out, ctx)
    onnx = export_stage(loaded.evalset, dense.frozen, quantized, ctx)
    summary = package_outputs(out, measured, onnx, ctx)
    dense.teacher.free()
    ck.clear()
    return summary


def _compress(loaded: Loaded, dense: Dense, ck: JobCheckpoints, ctx: PipelineContext) -> Recovered:
    """The compression group: drop_layers -> prune -> recover (method structured: its own
    stage, pruning steps and recovery interleaved)."""
    student = stage_drop_layers(loaded, dense, ctx)
    if loaded.spec.pruning.method == "structured":
        return stage_structured(loaded, dense, student, ck, ctx)
    pruned = stage_prune(loaded, student, ctx)
    return stage_recover(loaded, dense, pruned, ck, ctx)


def _quantize(
    loaded: Loaded, dense: Dense, rec: Recovered, ck: JobCheckpoints, ctx: PipelineContext
) -> Quantized:
    method = loaded.spec.quantization.method
    if method != "qat_int8":
        return stage_quantize(rec, method, ctx)
    return ck.resume(
        "qat",
        lambda: stage_qat(loaded, dense, rec, ctx),
        save_qat,
        lambda saved: restore_qat(rec, saved, ctx),
        ctx,
    )
