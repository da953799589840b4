"""The `load` stage: the dataset (cut to the spec's limits), the model and tokenizer, the
task's training items and the dev split to score; then the real stage plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.schemas.job_spec import JobSpec
from worker.pipelines.context import PipelineContext
from worker.pipelines.data import limit_splits
from worker.pipelines.inference import EvalSet
from worker.pipelines.models import LoadedModel, load_model
from worker.pipelines.stages.plan import plan, training_steps, wants_finetune
from worker.pipelines.tasks.base import Task, TaskData


@dataclass(frozen=True)
class Loaded:
    spec: JobSpec
    task: Task
    data: TaskData[Any]
    train_items: list[Any]  # the task's training items (tokenised once)
    evalset: EvalSet  # the dev split, scored by the task
    loaded: LoadedModel  # the model (fine-tuned in place by `finetune_dense`) and tokenizer
    finetune: bool  # whether `finetune_dense` runs

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer


def stage_load(spec: JobSpec, task: Task, ctx: PipelineContext) -> Loaded:
    ctx.reporter.stage("load")
    data = task.load(
        spec.dataset,
        data_dir=ctx.settings.data_dir,
        lookup=ctx.uploads,
        store=ctx.store,
        seed=spec.training.seed,
    )
    data = limit_splits(data, spec.dataset, spec.training.seed)
    ctx.reporter.step(0.3)
    loaded = load_model(
        spec.model,
        data.label_names,
        task=task,
        settings=ctx.settings,
        lookup=ctx.uploads,
        store=ctx.store,
        device=ctx.device,
        seed=spec.training.seed,
    )
    tokenizer = loaded.tokenizer
    train_items = task.items(tokenizer, data.train, spec.dataset, train=True)
    evalset = EvalSet.of(
        task, tokenizer, data.dev, data.label_names, spec.dataset, spec.training.eval_batch_size
    )
    finetune = wants_finetune(spec, loaded.has_trained_head)
    n_train = len(train_items)
    ctx.reporter.start(
        plan(spec, finetune=finetune, n_train=n_train),
        steps=training_steps(spec, finetune=finetune, n_train=n_train),
    )
    ctx.reporter.metrics(
        {
            "task": spec.task,
            "train_examples": len(data.train),
            "train_items": len(train_items),
            "dev_examples": len(data.dev),
            "num_labels": data.num_labels,
            "model_has_trained_head": loaded.has_trained_head,
            "device": str(ctx.device),
        }
    )
    return Loaded(spec, task, data, train_items, evalset, loaded, finetune)
