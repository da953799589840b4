"""The dense stages, `finetune_dense` (when asked) and `evaluate_dense`, checkpointed together
as `dense`: the fine-tuned model, its dev metrics and the frozen teacher made from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from worker.pipelines.context import PipelineContext
from worker.pipelines.inference import evaluate_model
from worker.pipelines.stages.checkpoints import Part, Saved
from worker.pipelines.stages.load import Loaded
from worker.pipelines.stages.plan import on_step, train_config
from worker.pipelines.tasks.base import Metrics
from worker.pipelines.teacher import Teacher, frozen_teacher
from worker.pipelines.train import train

DENSE = "dense"  # the tensor group of the teacher's weights


@dataclass(frozen=True)
class Dense:
    model: nn.Module  # the fine-tuned model; the compression stages go on from it, in place
    metrics: Metrics  # its dev metrics
    teacher: Teacher  # a frozen copy, with the distillation cache
    finetuned: bool
    steps: dict[str, int]  # {"finetune_dense": n} when it fine-tuned

    @property
    def frozen(self) -> nn.Module:
        """The dense model as it was after this stage (the teacher's copy)."""
        return self.teacher.model


def stage_dense(loaded: Loaded, ctx: PipelineContext) -> Dense:
    model = loaded.loaded.model
    steps: dict[str, int] = {}
    if loaded.finetune:
        ctx.reporter.stage("finetune_dense")
        res = train(
            model,
            loaded.tokenizer,
            loaded.train_items,
            train_config(loaded.spec, recovery=False),
            ctx.device,
            task=loaded.task,
            on_step=on_step(ctx),
            telemetry=ctx.reporter.train_meter(),
        )
        steps["finetune_dense"] = res.steps
    ctx.reporter.stage("evaluate_dense")
    metrics = evaluate_model(loaded.evalset, model, ctx.device)
    dense = Dense(model, metrics, _teacher(loaded, model, ctx), loaded.finetune, steps)
    ctx.reporter.metrics(dense_metrics(metrics))
    return dense


def _teacher(loaded: Loaded, model: nn.Module, ctx: PipelineContext) -> Teacher:
    return frozen_teacher(model, loaded.task, max_bytes=ctx.settings.teacher_cache_max_bytes)


def dense_metrics(ev: Metrics) -> dict[str, Any]:
    return {
        "dense_primary_metric": {"name": ev.primary, "value": ev.value},
        **{f"dense_{k}": v for k, v in ev.values.items()},
    }


def metrics_meta(ev: Metrics) -> dict[str, Any]:
    return {"primary": ev.primary, "values": ev.values, "n": ev.n, "details": ev.details}


def save_dense(dense: Dense) -> Part:
    meta = {
        "finetuned": dense.finetuned,
        "metrics": metrics_meta(dense.metrics),
        "steps": dense.steps,
    }
    return Part(meta, {DENSE: dense.frozen.state_dict()})


def restore_dense(loaded: Loaded, saved: Saved, ctx: PipelineContext) -> Dense:
    """The dense weights back into the loaded model, and the teacher made again from them."""
    model = loaded.loaded.model
    model.load_state_dict(saved.tensors(DENSE))
    metrics = Metrics(**saved.meta["metrics"])
    finetuned = bool(saved.meta["finetuned"])
    steps = {k: int(v) for k, v in saved.meta["steps"].items()}
    dense = Dense(model, metrics, _teacher(loaded, model, ctx), finetuned, steps)
    ctx.reporter.metrics(dense_metrics(metrics))
    return dense
