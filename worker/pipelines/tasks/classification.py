"""Single-label sequence classification (single sentences and pairs): cross-entropy,
T^2-scaled KL distillation, accuracy / macro-F1 / per-class scores, one `logits` output, parity
as argmax agreement. Reading is `worker.pipelines.data` (built-in TSVs, tweets, uploads)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from app.catalog import TASK_FACTS
from app.schemas.job_spec import DatasetSpec
from app.storage import ArtifactStore
from worker.pipelines import data as cls_data
from worker.pipelines.batches import collate
from worker.pipelines.evaluate import classification_metrics
from worker.pipelines.tasks.base import (
    Agreement,
    DatasetLookup,
    ItemOutputs,
    Metrics,
    Output,
    Task,
    TaskData,
    blend,
    has_head,
    labelled_head,
)

LOGITS = "logits"


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over the rows (the last
    axis is the distribution)."""
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1), reduction="batchmean"
    )
    return (t * t) * kl


def logits_agreement(
    outputs: Sequence[ItemOutputs], reference: Sequence[ItemOutputs], name: str, unit: str
) -> Agreement:
    """Argmax agreement and max |difference| of per-row logits (any leading shape)."""
    if len(outputs) != len(reference):
        raise ValueError(f"{len(outputs)} outputs against {len(reference)} references")
    same = total = 0
    diff = 0.0
    for a, b in zip(outputs, reference, strict=True):
        x, y = a[LOGITS], b[LOGITS]
        if x.shape != y.shape:
            raise ValueError(f"logits of shape {x.shape} against {y.shape}")
        same += int((x.argmax(axis=-1) == y.argmax(axis=-1)).sum())
        total += int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        if x.size:
            diff = max(diff, float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()))
    return Agreement(name, same / total if total else 1.0, diff, total, unit)


class SequenceClassification:
    facts = TASK_FACTS["sequence_classification"]
    outputs: tuple[Output, ...] = (Output(LOGITS, per_token=False),)
    auto_class = "AutoModelForSequenceClassification"
    min_agreement = 0.995

    def load(
        self, spec: DatasetSpec, *, data_dir: Path, lookup: DatasetLookup,
        store: ArtifactStore, seed: int,
    ) -> TaskData[cls_data.Example]:  # fmt: skip
        return cls_data.read_dataset(spec, data_dir=data_dir, lookup=lookup, store=store, seed=seed)

    def model_config(self, data: TaskData[Any]) -> dict[str, Any]:
        return labelled_head(data.label_names)

    def head_fits(self, config: Mapping[str, Any], data: TaskData[Any]) -> bool:
        return has_head(config, self.facts) and (config_num_labels(config) == data.num_labels)

    def items(
        self, tokenizer: Any, examples: Sequence[Any], spec: DatasetSpec, *, train: bool
    ) -> list[Any]:
        return list(examples)  # tokenised batch by batch in `collate`

    def collate(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        return collate(tokenizer, items, max_length, device)

    def loss(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        return F.cross_entropy(outputs[LOGITS], batch["labels"])

    def distill_loss(
        self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor],
        batch: Mapping[str, torch.Tensor], *, hardness: float, temperature: float,
    ) -> torch.Tensor:  # fmt: skip
        kl = soft_kl(student[LOGITS], teacher[LOGITS], temperature)
        return blend(hardness, kl, lambda: self.loss(student, batch))

    def score(
        self, examples: Sequence[Any], items: Sequence[Any], outputs: Sequence[ItemOutputs],
        spec: DatasetSpec, label_names: Sequence[str],
    ) -> Metrics:  # fmt: skip
        preds = [int(o[LOGITS].argmax()) for o in outputs]
        ev = classification_metrics(preds, [ex.label for ex in examples], label_names)
        return Metrics(
            "accuracy",
            {"accuracy": ev.accuracy, "macro_f1": ev.macro_f1},
            ev.n,
            {"per_class": ev.per_class},
        )

    def agree(
        self, items: Sequence[Any], outputs: Sequence[ItemOutputs],
        reference: Sequence[ItemOutputs], reference_name: str, spec: DatasetSpec,
    ) -> Agreement:  # fmt: skip
        return logits_agreement(outputs, reference, reference_name, "examples")


def config_num_labels(cfg: Mapping[str, Any]) -> int:
    if isinstance(cfg.get("id2label"), dict):
        return len(cfg["id2label"])
    return int(cfg.get("num_labels", 2))


TASK: Task = SequenceClassification()
