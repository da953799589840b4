"""Small models for the compression tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import pytest
import torch
from torch import Tensor, nn
from transformers import BertConfig, BertForSequenceClassification

from app.architectures.families import BERT
from worker.compression import GradientSource, layer_linear_targets

BERT_PATHS = tuple(m.path for m in BERT.matrices)


def tiny_bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=60,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
    )


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config())


def bert_targets(model: nn.Module) -> dict[str, nn.Linear]:
    """A BERT's prunable matrices (task model or bare BertModel), in model order."""
    base = getattr(model, "bert", model)
    prefix = "bert.encoder.layer." if base is not model else "encoder.layer."
    return layer_linear_targets(list(base.encoder.layer), prefix, BERT_PATHS)


def bert_batches(seed: int = 0, n: int = 6, batch: int = 2) -> list[dict[str, Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 60, (n * batch, 12), generator=gen)
    labels = torch.randint(0, 2, (n * batch,), generator=gen)
    return [
        {"input_ids": ids[i : i + batch], "labels": labels[i : i + batch]}
        for i in range(0, n * batch, batch)
    ]


def hf_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    loss: Tensor = model(**batch).loss
    return loss


def bert_source(model: nn.Module, seed: int = 0) -> GradientSource:
    batches = bert_batches(seed)
    fresh: Callable[[], Iterable[Mapping[str, Tensor]]] = lambda: list(batches)  # noqa: E731
    return GradientSource(model=model, batches=fresh, loss_fn=hf_loss)


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """These models are tiny: one intra-op thread avoids OpenMP spin-waiting on a busy
    2-core machine (which made single tests take tens of seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
