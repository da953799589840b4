"""Running a model over a task's items: batches, the task's outputs per item (from PyTorch or
from an ONNX Runtime session), and the task's metrics of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from app.schemas.job_spec import DatasetSpec
from worker.pipelines.tasks.base import (
    ItemOutputs,
    Metrics,
    Task,
    model_inputs,
    output_tensors,
    split_outputs,
)


def task_batches(
    task: Task,
    tokenizer: Any,
    items: Sequence[Any],
    batch_size: int,
    max_length: int,
    device: torch.device,
    order: Sequence[int] | None = None,
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """(item indices, collated batch) in `order` (default: as given)."""
    idx = list(order) if order is not None else list(range(len(items)))
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        yield chunk, task.collate(tokenizer, [items[i] for i in chunk], max_length, device)


@dataclass(frozen=True)
class EvalSet:
    """A task's dev examples, their scoring items (tokenised once) and how to batch them."""

    task: Task
    tokenizer: Any
    examples: list[Any]
    items: list[Any]
    label_names: list[str]
    spec: DatasetSpec
    batch_size: int

    @classmethod
    def of(
        cls, task: Task, tokenizer: Any, examples: Sequence[Any], label_names: Sequence[str],
        spec: DatasetSpec, batch_size: int,
    ) -> EvalSet:  # fmt: skip
        items = task.items(tokenizer, examples, spec, train=False)
        return cls(task, tokenizer, list(examples), items, list(label_names), spec, batch_size)

    def head(self, n: int) -> EvalSet:
        """The first `n` examples only (a quick score after each pruning step)."""
        if n >= len(self.examples):
            return self
        return EvalSet.of(
            self.task, self.tokenizer, self.examples[:n], self.label_names, self.spec,
            self.batch_size,
        )  # fmt: skip

    def batches(
        self, device: torch.device, batch_size: int | None = None
    ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        return task_batches(
            self.task, self.tokenizer, self.items, batch_size or self.batch_size,
            self.spec.max_length, device,
        )  # fmt: skip

    def score(self, outputs: Sequence[ItemOutputs]) -> Metrics:
        return self.task.score(self.examples, self.items, outputs, self.spec, self.label_names)


Forward = Callable[[dict[str, torch.Tensor]], Mapping[str, np.ndarray]]


def collect(
    evalset: EvalSet, forward: Forward, device: torch.device, batch_size: int | None = None
) -> list[ItemOutputs]:
    """Every item's outputs, `forward` mapping model inputs to the task's batch outputs."""
    out: list[ItemOutputs] = []
    for _, batch in evalset.batches(device, batch_size):
        inputs = model_inputs(batch)
        mask = inputs["attention_mask"].detach().cpu().numpy()
        out.extend(split_outputs(evalset.task, forward(inputs), mask))
    return out


def torch_forward(task: Task, model: nn.Module) -> Forward:
    def forward(inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = output_tensors(task, model(**inputs))
        return {k: v.detach().float().cpu().numpy() for k, v in outs.items()}

    return forward


def onnx_forward(task: Task, session: Any) -> Forward:
    from worker.pipelines.export import feed_of

    names = [o.name for o in task.outputs]

    def forward(inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        values = session.run(names, feed_of(session, inputs))
        return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}

    return forward


def torch_outputs(
    evalset: EvalSet, model: nn.Module, device: torch.device, batch_size: int | None = None
) -> list[ItemOutputs]:
    was_training = model.training
    model.eval()
    try:
        return collect(evalset, torch_forward(evalset.task, model), device, batch_size)
    finally:
        model.train(was_training)


def onnx_outputs(
    evalset: EvalSet, session: Any, batch_size: int | None = None
) -> list[ItemOutputs]:
    return collect(evalset, onnx_forward(evalset.task, session), torch.device("cpu"), batch_size)


def evaluate_model(evalset: EvalSet, model: nn.Module, device: torch.device) -> Metrics:
    return evalset.score(torch_outputs(evalset, model, device))
