"""What one run of the pipeline carries from stage to stage; its own module so that the stages
(which read and write it) and the orchestrator in `compress` (which runs them) both import it
and never each other."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from app.schemas.job_spec import JobSpec
from worker.pipelines import pruning as pr
from worker.pipelines.checkpoint import Checkpoints
from worker.pipelines.data import TaskData
from worker.pipelines.evaluate import EvalResult
from worker.pipelines.models import LoadedModel


@dataclass
class RunState:
    spec: JobSpec
    data: TaskData | None = None
    loaded: LoadedModel | None = None
    model: nn.Module | None = None
    dense: nn.Module | None = None  # the dense (teacher) model after fine-tuning
    qmodel: nn.Module | None = None
    qat_model: nn.Module | None = None  # the fake-quant model after QAT (for parity)
    finetuned: bool = False
    dense_eval: EvalResult | None = None
    eval: EvalResult | None = None
    int8_eval: EvalResult | None = None
    kept_layers: list[int] | None = None
    masks: pr.MaskState | None = None
    steps: dict[str, int] = field(default_factory=dict)
    # dev accuracy right after each pruning step, keyed by (training step, sparsity)
    prune_accuracy: dict[tuple[int, float], float] = field(default_factory=dict)
    wall_start: float = field(default_factory=time.monotonic)
    checkpoints: Checkpoints | None = None
    completed: list[str] = field(default_factory=list)  # checkpointed stages
    resumed_from: dict[str, Any] | None = None
