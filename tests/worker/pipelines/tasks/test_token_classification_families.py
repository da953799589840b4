"""Pre-split words are cut into the pieces running text gives, for every family's tokenizer
(byte-level BPE reads a word's leading space as part of it)."""

from __future__ import annotations

import pytest

from app.schemas.job_spec import DatasetSpec
from tests.factories.encoder_configs import FAMILIES
from tests.factories.encoders import tokenizer_for
from worker.pipelines.tasks.token_classification import (
    Sentence,
    TokenClassification,
    byte_level_words,
)

WORDS = ("Happy", "people", "rarely", "live", "in", "Paris", "today")


@pytest.mark.parametrize("family", FAMILIES)
def test_pre_split_words_are_tokenized_as_running_text(family: str) -> None:
    tokenizer = tokenizer_for(family)
    task = TokenClassification()
    spec = DatasetSpec(name="conll2003", max_length=64)
    (item,) = task.items(tokenizer, [Sentence(WORDS, (0,) * len(WORDS))], spec, train=False)
    assert item.input_ids == tokenizer(" ".join(WORDS))["input_ids"]
    first = [item.word_ids.index(w) for w in range(len(WORDS))]
    assert [item.labels[i] for i in first] == [0] * len(WORDS)


def test_only_byte_level_tokenizers_get_the_space() -> None:
    assert {f for f in FAMILIES if byte_level_words(tokenizer_for(f))} == {
        "roberta", "modernbert"
    }  # fmt: skip
