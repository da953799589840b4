"""Tokenise examples into padded batches (dynamic padding: each batch to its longest row)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from worker.pipelines.data import Example


def collate(
    tokenizer: Any, examples: Sequence[Example], max_length: int, device: torch.device
) -> dict[str, torch.Tensor]:
    texts = [ex.text for ex in examples]
    pairs = [ex.text_pair or "" for ex in examples]
    has_pairs = any(ex.text_pair is not None for ex in examples)
    enc = tokenizer(
        texts,
        pairs if has_pairs else None,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    batch = {k: v.to(device) for k, v in enc.items()}
    batch["labels"] = torch.tensor([ex.label for ex in examples], dtype=torch.long, device=device)
    return batch


def iter_batches(
    tokenizer: Any,
    examples: Sequence[Example],
    batch_size: int,
    max_length: int,
    device: torch.device,
    order: Sequence[int] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    idx = list(order) if order is not None else list(range(len(examples)))
    for start in range(0, len(idx), batch_size):
        chunk = [examples[i] for i in idx[start : start + batch_size]]
        yield collate(tokenizer, chunk, max_length, device)


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}
