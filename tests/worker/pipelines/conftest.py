"""Fixtures for pipeline tests: a tiny random BERT directory and tokenizer, loaded once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories.tiny_bert import write_tiny_bert

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "model", with_head=True)


@pytest.fixture(scope="session")
def tokenizer(tiny_bert_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bert_dir))


@pytest.fixture
def tiny_model(tiny_bert_dir: Path) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir)).eval()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for tests of many tiny models (per-family tests): OpenMP
    spin-waiting on a busy 2-core machine makes them several times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
