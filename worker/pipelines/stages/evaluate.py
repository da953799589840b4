"""The `evaluate` stage: the task's dev metrics of the compressed model (and of the int8 one,
on the CPU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from worker.pipelines.context import PipelineContext
from worker.pipelines.inference import evaluate_model
from worker.pipelines.stages.load import Loaded
from worker.pipelines.stages.quantize import Quantized
from worker.pipelines.tasks.base import Metrics


@dataclass(frozen=True)
class Evaluated:
    compressed: Metrics
    int8: Metrics | None  # None without an int8 model


def stage_evaluate(loaded: Loaded, q: Quantized, ctx: PipelineContext) -> Evaluated:
    ctx.reporter.stage("evaluate")
    ev = evaluate_model(loaded.evalset, q.model, ctx.device)
    i8 = None
    if q.qmodel is not None:
        ctx.reporter.step(0.5)
        i8 = evaluate_model(loaded.evalset, q.qmodel, torch.device("cpu"))
    metrics: dict[str, Any] = {"primary_metric": {"name": ev.primary, "value": ev.value}}
    metrics.update(ev.values)
    if i8 is not None:
        metrics["int8_primary_metric"] = {"name": i8.primary, "value": i8.value}
        metrics[f"int8_{i8.primary}"] = i8.value
    ctx.reporter.metrics(metrics)
    return Evaluated(ev, i8)
