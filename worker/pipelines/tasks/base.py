"""The task seam: what the pipeline asks of a task (reading, collation, losses, metric,
export outputs, parity), behind one Protocol; `worker.pipelines.tasks` maps `spec.task` to the
module that implements it.

The pipeline never looks inside a task's examples or items. It asks the task for `items`
(what one row of a batch is: an example for classification, a tokenised window for question
answering), batches them with `collate` (a flat dict of tensors: the model inputs `input_ids`,
`attention_mask`, `token_type_ids`, plus the task's own targets), runs the model, keeps the
task's `outputs` of every item (token-level outputs cut to the item's real length: padding is
on the right) and hands those to `score` and `agree`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from app.catalog import TaskFacts
from app.schemas.job_spec import DatasetSpec
from app.storage import ArtifactStore
from worker.pipelines.data import DatasetLookup as DatasetLookup  # re-exported: the seam's
from worker.pipelines.data import TaskData as TaskData
from worker.pipelines.data import uploaded_record as uploaded_record

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
IGNORE_INDEX = -100  # a target position that takes no loss (F.cross_entropy's default)


@dataclass(frozen=True)
class Output:
    """One output of the model that the task reads (and the ONNX graph returns)."""

    name: str  # the model output's attribute (`logits`, `start_logits`) and the ONNX name
    per_token: bool  # [batch, sequence, ...] rather than [batch, ...]


@dataclass(frozen=True)
class Metrics:
    """A task's scores on the dev split. `values` holds every scalar (the primary among them);
    `details` what is not a scalar (per class, per entity type)."""

    primary: str
    values: dict[str, float]
    n: int  # what was scored: examples, sentences, questions
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return self.values[self.primary]

    def as_dict(self) -> dict[str, Any]:
        """The report's form: the primary metric, every scalar by name, the details."""
        return {
            "primary_metric": {"name": self.primary, "value": self.value},
            **self.values,
            **self.details,
            "eval_examples": self.n,
        }


@dataclass(frozen=True)
class Agreement:
    """How closely one model's outputs follow a reference model's on the dev split."""

    reference: str  # what was compared against (e.g. "pytorch_fp32")
    agreement: float  # the fraction of `unit`s whose prediction is the same
    max_abs_diff: float  # over every output value compared
    n: int
    unit: str  # "examples", "questions", "tokens"
    extra: dict[str, float] = field(default_factory=dict)  # e.g. a correlation

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "agreement": self.agreement,
            "max_abs_diff": self.max_abs_diff,
            "n": self.n,
            "unit": self.unit,
            **self.extra,
        }


# One item's outputs: output name -> array (token-level ones cut to the item's length)
ItemOutputs = dict[str, np.ndarray]


class Task(Protocol):
    facts: TaskFacts  # name, head, primary metric (app.catalog)
    outputs: tuple[Output, ...]
    auto_class: str  # the transformers Auto class that builds the model (by name)
    min_agreement: float  # the export parity gate on `Agreement.agreement`

    def load(
        self,
        spec: DatasetSpec,
        *,
        data_dir: Path,
        lookup: DatasetLookup,
        store: ArtifactStore,
        seed: int,
    ) -> TaskData[Any]:
        """Both splits of a built-in or uploaded data set, before subsampling; raises
        DatasetUnavailable / DatasetInvalid (worker.pipelines.errors)."""
        ...

    def model_config(self, data: TaskData[Any]) -> dict[str, Any]:
        """from_pretrained keyword arguments for the head (num_labels, id2label, ...)."""
        ...

    def head_fits(self, config: Mapping[str, Any], data: TaskData[Any]) -> bool:
        """Whether a checkpoint's config.json describes a trained head for this data."""
        ...

    def items(
        self, tokenizer: Any, examples: Sequence[Any], spec: DatasetSpec, *, train: bool
    ) -> list[Any]:
        """What one batch row is, for training (`train`) or scoring."""
        ...

    def collate(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Model inputs (MODEL_INPUTS, padded on the right) and the task's targets."""
        ...

    def loss(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The task's own training loss (mean over the batch)."""
        ...

    def distill_loss(
        self,
        student: Mapping[str, torch.Tensor],
        teacher: Mapping[str, torch.Tensor],
        batch: Mapping[str, torch.Tensor],
        *,
        hardness: float,
        temperature: float,
    ) -> torch.Tensor:
        """(1 - hardness) * loss + hardness * the distillation term (token-level outputs:
        over real tokens only, `batch["attention_mask"]`)."""
        ...

    def score(
        self, examples: Sequence[Any], items: Sequence[Any], outputs: Sequence[ItemOutputs],
        spec: DatasetSpec, label_names: Sequence[str],
    ) -> Metrics:  # fmt: skip
        """Metrics of `outputs` (one per item of `items(examples, train=False)`)."""
        ...

    def agree(
        self,
        items: Sequence[Any],
        outputs: Sequence[ItemOutputs],
        reference: Sequence[ItemOutputs],
        reference_name: str,
        spec: DatasetSpec,
    ) -> Agreement:
        """How far `outputs` follow `reference` (both from the same items)."""
        ...


def model_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k in MODEL_INPUTS}


def output_tensors(task: Task, model_out: Any) -> dict[str, torch.Tensor]:
    """The task's outputs from a transformers model output (attributes by name)."""
    return {o.name: getattr(model_out, o.name) for o in task.outputs}


def split_outputs(
    task: Task, outputs: Mapping[str, np.ndarray], attention_mask: np.ndarray
) -> list[ItemOutputs]:
    """Batch outputs -> one dict per row, token-level outputs cut to the row's length."""
    lengths = attention_mask.sum(axis=1).astype(int)
    rows: list[ItemOutputs] = []
    for i, length in enumerate(lengths):
        rows.append(
            {
                o.name: np.asarray(
                    outputs[o.name][i, :length] if o.per_token else outputs[o.name][i]
                )
                for o in task.outputs
            }
        )
    return rows


def pad_outputs(
    task: Task, rows: Sequence[Mapping[str, torch.Tensor]], length: int
) -> dict[str, torch.Tensor]:
    """One dict per row (token-level outputs cut to the row's length) -> batch tensors, the
    token-level ones zero-padded on the right to `length`."""
    out: dict[str, torch.Tensor] = {}
    for o in task.outputs:
        values = [r[o.name] for r in rows]
        if o.per_token:
            padded = values[0].new_zeros((len(values), length, *values[0].shape[1:]))
            for i, v in enumerate(values):
                padded[i, : v.shape[0]] = v
            out[o.name] = padded
        else:
            out[o.name] = torch.stack(list(values))
    return out


def has_head(config: Mapping[str, Any], facts: TaskFacts) -> bool:
    """Whether config.json names a model with this task's head (`architectures`)."""
    archs = config.get("architectures") or []
    return any(str(a).endswith(facts.head_suffix) for a in archs)


def labelled_head(names: Sequence[str]) -> dict[str, Any]:
    """from_pretrained arguments for a head with one output per name, in id order."""
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


def pad_ids(
    rows: Sequence[Sequence[int]], width: int, value: int, device: torch.device
) -> torch.Tensor:
    """Rows of ids right-padded with `value` to `width`, as one long tensor."""
    data = [list(r) + [value] * (width - len(r)) for r in rows]
    return torch.tensor(data, dtype=torch.long, device=device)


def pad_inputs(tokenizer: Any, items: Sequence[Any], device: torch.device) -> dict[str, Any]:
    """The model inputs of items tokenised ahead (each with `input_ids`, and `token_type_ids`
    or None), right-padded to the longest: input_ids, attention_mask, token_type_ids."""
    width = max(len(it.input_ids) for it in items)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = {
        "input_ids": pad_ids([it.input_ids for it in items], width, pad, device),
        "attention_mask": pad_ids([[1] * len(it.input_ids) for it in items], width, 0, device),
    }
    if items[0].token_type_ids is not None:
        batch["token_type_ids"] = pad_ids([it.token_type_ids for it in items], width, 0, device)
    return batch


def blend(hardness: float, soft: torch.Tensor, hard: Callable[[], torch.Tensor]) -> torch.Tensor:
    """(1 - hardness) * hard() + hardness * soft: the distillation loss every task mixes from
    its own loss and its distillation term (`hard` is not computed at hardness 1)."""
    if hardness >= 1.0:
        return hardness * soft
    return (1.0 - hardness) * hard() + hardness * soft
