"""A plain PyTorch fine-tuning loop over a task's items: AdamW, linear warmup then linear
decay, gradient clipping, seeded shuffling, dynamic padding, epochs or max_steps, the task's
loss or its distillation loss against a frozen teacher (whose outputs `Teacher` caches), and
callbacks (mask holding, gradual pruning, progress, telemetry)."""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from app.schemas.job_spec import JobSpec
from worker.compression.distill import hidden_distillation_loss, layer_map
from worker.pipelines.inference import task_batches
from worker.pipelines.tasks.base import Task, model_inputs, output_tensors
from worker.pipelines.teacher import Teacher
from worker.pipelines.telemetry import StepSample


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    max_length: int = 128


@dataclass(frozen=True)
class DistillConfig:
    hardness: float = 1.0
    temperature: float = 2.0
    hidden_weight: float = 0.0  # token-level distillation of hidden states (0: off)
    kept_layers: tuple[int, ...] | None = None  # the teacher layer of each student layer


def distill_config(spec: JobSpec, kept_layers: Sequence[int] | None) -> DistillConfig | None:
    """The spec's distillation (`spec.distillation`), None when it is off; `kept_layers`: the
    teacher layers a dropped-layer student kept (None: none dropped)."""
    d = spec.distillation
    if not d.enabled:
        return None
    kept = None if kept_layers is None else tuple(int(k) for k in kept_layers)
    return DistillConfig(d.hardness, d.temperature, d.hidden_weight, kept)


def _distill_loss(
    task: Task, model: nn.Module, teacher: Teacher, distill: DistillConfig,
    indices: Sequence[int], batch: dict[str, torch.Tensor],
) -> torch.Tensor:  # fmt: skip
    """The task's distillation loss, plus the hidden states' token-level term when asked."""
    soft = {"hardness": distill.hardness, "temperature": distill.temperature}
    if distill.hidden_weight <= 0:
        out = output_tensors(task, model(**model_inputs(batch)))
        return task.distill_loss(out, teacher.outputs(indices, batch), batch, **soft)
    raw = model(**model_inputs(batch), output_hidden_states=True)
    t_out, t_hidden = teacher.with_hidden_states(batch)
    student_hidden = raw.hidden_states
    mapping = layer_map(len(student_hidden) - 1, len(t_hidden) - 1, distill.kept_layers)
    loss = task.distill_loss(output_tensors(task, raw), t_out, batch, **soft)
    token = hidden_distillation_loss(student_hidden, t_hidden, batch["attention_mask"], mapping)
    return loss + distill.hidden_weight * token


class TrainCallback(Protocol):
    def on_step_begin(self, step: int, total: int) -> None: ...
    def on_step_end(self, step: int, total: int) -> None: ...
    def on_train_end(self, total: int) -> None: ...


class Reapplier(Protocol):
    def reapply(self) -> None: ...


class HoldMask:
    """Re-apply a sparsity mask after every optimizer step, so pruned weights stay zero."""

    def __init__(self, hold: Reapplier) -> None:
        self.hold = hold

    def on_step_begin(self, step: int, total: int) -> None:
        pass

    def on_step_end(self, step: int, total: int) -> None:
        self.hold.reapply()

    def on_train_end(self, total: int) -> None:
        self.hold.reapply()


@dataclass
class TrainProgress:
    """Shared with :func:`train` to checkpoint and resume mid-way: `train` sets `optimizer` and
    `scheduler` and keeps `step` current; to resume, give `step` and the saved states."""

    step: int = 0
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None


@dataclass
class TrainResult:
    steps: int
    last_loss: float


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(n_examples / batch_size))


def total_steps(n_examples: int, cfg: TrainConfig) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(0, math.ceil(cfg.epochs * steps_per_epoch(n_examples, cfg.batch_size)))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_norm_or_bias = name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name
        (no_decay if is_norm_or_bias else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate)


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def rewinding_schedule(warmup: int, total: int, restarts: Sequence[int]) -> Callable[[int], float]:
    """Learning-rate rewinding: the linear schedule up to the first restart, then at each
    restart (a pruning step) back to the full rate, decaying linearly to zero at the next
    restart, or at `total` after the last one (the recovery phase)."""
    points = sorted({r for r in restarts if 0 < r < total})
    if not points:
        return linear_schedule(warmup, total)
    first = linear_schedule(warmup, points[0])
    ends = [*points[1:], total]

    def factor(step: int) -> float:
        if step < points[0]:
            return first(step)
        i = bisect.bisect_right(points, step) - 1
        start, end = points[i], ends[i]
        return max(0.0, (end - step) / (end - start))

    return factor


def default_task() -> Task:
    from worker.pipelines.tasks import get_task

    return get_task("sequence_classification")


def train(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Any],
    cfg: TrainConfig,
    device: torch.device,
    *,
    task: Task | None = None,
    callbacks: Sequence[TrainCallback] = (),
    on_step: Callable[[int, int], None] | None = None,
    teacher: Teacher | nn.Module | None = None,
    distill: DistillConfig | None = None,
    steps: int | None = None,
    progress: TrainProgress | None = None,
    lr_restarts: Sequence[int] = (),
    telemetry: Callable[[StepSample], None] | None = None,
) -> TrainResult:
    """Train on the task's training items `examples` (default task: sequence classification)
    for `steps` (default: from cfg) optimizer steps. `on_step(done, total)` runs after
    each step (progress, cancel); it may raise to stop training. With `progress` at step s > 0,
    training resumes there (optimizer/scheduler states restored, the first s batches of the
    seeded order skipped). `lr_restarts`: steps where the learning rate rewinds
    (rewinding_schedule); none: one linear schedule. `telemetry` gets each step's loss,
    learning rate and batch size (a stage's `TrainMeter`), before `on_step`."""
    if not examples:
        raise ValueError("no training examples")
    task = task or default_task()
    if isinstance(teacher, nn.Module):
        teacher = Teacher(teacher, task, max_bytes=0)
    if teacher is not None and distill is not None and distill.hidden_weight <= 0:
        teacher.bind(tokenizer, examples, cfg.max_length, device)  # fill its cache
    total = total_steps(len(examples), cfg) if steps is None else steps
    start = progress.step if progress is not None else 0
    if start == 0:
        torch.manual_seed(cfg.seed)
    model.train()
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, rewinding_schedule(int(cfg.warmup_ratio * total), total, lr_restarts)
    )
    if progress is not None:
        if progress.optimizer_state is not None:
            optimizer.load_state_dict(progress.optimizer_state)
        if progress.scheduler_state is not None:
            scheduler.load_state_dict(progress.scheduler_state)
        progress.optimizer, progress.scheduler = optimizer, scheduler
    per_epoch = steps_per_epoch(len(examples), cfg.batch_size)
    step, epoch, last_loss = start, start // per_epoch, float("nan")
    skip = start % per_epoch
    while step < total:
        order = list(range(len(examples)))
        random.Random(cfg.seed * 1_000_003 + epoch).shuffle(order)
        order, skip = order[skip * cfg.batch_size :], 0
        for indices, batch in task_batches(
            task, tokenizer, examples, cfg.batch_size, cfg.max_length, device, order
        ):
            if step >= total:
                break
            for cb in callbacks:
                cb.on_step_begin(step, total)
            if teacher is not None and distill is not None:
                loss = _distill_loss(task, model, teacher, distill, indices, batch)
            else:
                loss = task.loss(output_tensors(task, model(**model_inputs(batch))), batch)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            lr = float(optimizer.param_groups[0]["lr"])  # the rate this step uses
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if progress is not None:
                progress.step = step
            last_loss = float(loss.detach())
            for cb in callbacks:
                cb.on_step_end(step, total)
            if telemetry is not None:
                telemetry(StepSample(step, total, last_loss, lr, len(indices)))
            if on_step is not None:
                on_step(step, total)
        epoch += 1
    for cb in callbacks:
        cb.on_train_end(total)
    model.eval()
    return TrainResult(step, last_loss)
