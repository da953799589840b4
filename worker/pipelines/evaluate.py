"""Accuracy, macro-F1 and per-class precision/recall/F1 on the dev split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from worker.pipelines.batches import iter_batches, model_inputs
from worker.pipelines.data import Example


@dataclass
class EvalResult:
    accuracy: float
    macro_f1: float
    n: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_metrics(
    preds: Sequence[int], labels: Sequence[int], label_names: Sequence[str]
) -> EvalResult:
    n = len(labels)
    correct = sum(int(p == y) for p, y in zip(preds, labels, strict=True))
    per_class: dict[str, dict[str, float]] = {}
    f1s: list[float] = []
    for c, name in enumerate(label_names):
        tp = sum(1 for p, y in zip(preds, labels, strict=True) if p == c and y == c)
        fp = sum(1 for p, y in zip(preds, labels, strict=True) if p == c and y != c)
        fn = sum(1 for p, y in zip(preds, labels, strict=True) if p != c and y == c)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": float(tp + fn),
        }
        f1s.append(f1)
    return EvalResult(
        accuracy=correct / n if n else 0.0,
        macro_f1=sum(f1s) / len(f1s) if f1s else 0.0,
        n=n,
        per_class=per_class,
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    batch_size: int,
    max_length: int,
    device: torch.device,
) -> list[int]:
    model.eval()
    preds: list[int] = []
    for batch in iter_batches(tokenizer, examples, batch_size, max_length, device):
        logits = model(**model_inputs(batch)).logits
        preds.extend(int(i) for i in logits.argmax(dim=-1).tolist())
    return preds


def evaluate(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    label_names: Sequence[str],
    *,
    batch_size: int,
    max_length: int,
    device: torch.device,
) -> EvalResult:
    preds = predict(
        model, tokenizer, examples, batch_size=batch_size, max_length=max_length, device=device
    )
    return classification_metrics(preds, [ex.label for ex in examples], label_names)
