"""The `drop_layers` stage (when `spec.layers` asks): a copy of the fine-tuned model keeping
evenly spaced encoder layers; without it the fine-tuned model itself goes on."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from worker.pipelines.context import PipelineContext
from worker.pipelines.layers import drop_layers
from worker.pipelines.stages.dense import Dense
from worker.pipelines.stages.load import Loaded


@dataclass(frozen=True)
class Student:
    model: nn.Module
    kept_layers: list[int] | None  # the encoder layers kept; None when none were dropped


def shrink(loaded: Loaded, model: nn.Module, ctx: PipelineContext) -> Student:
    """`model` with the spec's layers kept (also how a checkpoint rebuilds the student)."""
    layers = loaded.spec.layers
    if layers is None:
        return Student(model, None)
    small, kept = drop_layers(model, layers.keep)
    return Student(small.to(ctx.device), kept)


def stage_drop_layers(loaded: Loaded, dense: Dense, ctx: PipelineContext) -> Student:
    if loaded.spec.layers is not None:
        ctx.reporter.stage("drop_layers")
    return shrink(loaded, dense.model, ctx)
