"""What a spec asks of the pipeline: which stages run, their progress weights, and the
training configurations and lengths (shared by the stages, the orchestrator in `compress`,
the runner and bench/)."""

from __future__ import annotations

from collections.abc import Callable

from app.schemas.job_spec import GradualSchedule, JobSpec
from worker.pipelines import pruning as pr
from worker.pipelines.context import PipelineContext
from worker.pipelines.errors import UnsupportedSpec
from worker.pipelines.train import TrainConfig, steps_per_epoch, total_steps

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


def gradual(spec: JobSpec) -> bool:
    return isinstance(spec.pruning.schedule, GradualSchedule)


def recovery_steps(spec: JobSpec, n_train: int) -> int:
    """Recovery length; a gradual schedule extends it to cover the schedule."""
    cfg = train_config(spec, recovery=True)
    steps = total_steps(n_train, cfg)
    sched = spec.pruning.schedule
    if prunes(spec) and isinstance(sched, GradualSchedule):
        steps = max(steps, pr.schedule_steps(sched, steps_per_epoch(n_train, cfg.batch_size)))
    return steps


def recovers(spec: JobSpec, n_train: int) -> bool:
    """Whether the `recover` stage trains: something was removed and there are steps to take."""
    return (prunes(spec) or spec.layers is not None) and recovery_steps(spec, n_train) > 0


def qat_steps(spec: JobSpec, n_train: int) -> int:
    """The `qat` stage's length: quantization.qat_steps, by default the recovery length."""
    n = spec.quantization.qat_steps
    return total_steps(n_train, train_config(spec, recovery=True)) if n is None else n


def training_steps(spec: JobSpec, *, finetune: bool, n_train: int) -> dict[str, int]:
    """The optimizer steps each training stage of the plan takes (telemetry's remaining
    steps, and from them the API's time-left estimate)."""
    names = {n for n, _ in plan(spec, finetune=finetune, n_train=n_train)}
    steps = {
        "finetune_dense": total_steps(n_train, train_config(spec, recovery=False)),
        "recover": recovery_steps(spec, n_train),
        "qat": qat_steps(spec, n_train),
    }
    return {n: v for n, v in steps.items() if n in names}


def plan(spec: JobSpec, *, finetune: bool, n_train: int) -> list[tuple[str, float]]:
    names = ["load"]
    if finetune:
        names.append("finetune_dense")
    names.append("evaluate_dense")
    if spec.layers is not None:
        names.append("drop_layers")
    if prunes(spec) and not gradual(spec):
        names.append("prune")
    if recovers(spec, n_train):
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


def on_step(ctx: PipelineContext) -> Callable[[int, int], None]:
    """A training `on_step` that reports the fraction of the open stage done."""

    def report(done: int, total: int) -> None:
        ctx.reporter.step(done / max(1, total))

    return report
