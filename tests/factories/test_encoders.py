"""The tiny models of every family: saved directories reload with plain transformers, and the
locally trained tokenizers agree with their family's config and round-trip through
save_pretrained (fast and slow file sets)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from app.catalog import TASK_FACTS, TASKS
from tests.factories.encoder_configs import FAMILIES, TINY, tiny_config
from tests.factories.encoders import (
    FAMILY_TOKENIZERS,
    auto_class,
    tokenizer_for,
    write_tiny_encoder,
)

# The families whose models take segment ids (type_vocab_size > 1)
WITH_TOKEN_TYPES = {"bert", "electra"}
CONTEXT = "the happy story was told in a lovely town by the river."
QUESTION = "Where was the story told?"
SLOW_FAMILIES = [f for f in FAMILIES if FAMILY_TOKENIZERS[f].slow_files]


def _load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    return {f: write_tiny_encoder(root / f, f) for f in FAMILIES}


def test_every_family_of_the_configs_has_a_tokenizer() -> None:
    assert set(FAMILY_TOKENIZERS) == set(FAMILIES)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_saved_model_reloads_with_its_task_class(tmp_path: Path, family: str, task: str) -> None:
    folder = write_tiny_encoder(tmp_path, family, task=task, num_labels=3)
    model = auto_class(task).from_pretrained(str(folder), local_files_only=True).eval()
    assert type(model).__name__.endswith(TASK_FACTS[task].head_suffix)  # type: ignore[index]
    assert model.config.model_type == tiny_config(family).model_type
    tok = _load_tokenizer(folder)
    batch = tok([QUESTION, "short"], [CONTEXT, "pair"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    rows, length = batch["input_ids"].shape
    if task == "question_answering":
        assert out.start_logits.shape == out.end_logits.shape == (rows, length)
    elif task == "token_classification":
        assert out.logits.shape == (rows, length, 3)
    else:
        assert out.logits.shape == (rows, 1 if task == "regression" else 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_bare_model_has_no_head(tmp_path: Path, family: str) -> None:
    from transformers import AutoModel

    folder = write_tiny_encoder(tmp_path, family, with_head=False)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    assert not type(model).__name__.endswith("ForSequenceClassification")
    assert model.config.architectures == [type(model).__name__]


@pytest.mark.parametrize("family", FAMILIES)
def test_special_token_ids_agree_with_the_config(family: str) -> None:
    config, tok = tiny_config(family), tokenizer_for(family)
    assert len(tok) == config.vocab_size == TINY["vocab_size"]
    assert tok.pad_token_id == config.pad_token_id
    for key, token_id in (("bos", tok.cls_token_id), ("cls", tok.cls_token_id),
                          ("eos", tok.sep_token_id), ("sep", tok.sep_token_id)):  # fmt: skip
        if getattr(config, f"{key}_token_id", None) is not None:
            assert getattr(config, f"{key}_token_id") == token_id, key
    ids = tok("a sentence")["input_ids"]
    assert (ids[0], ids[-1]) == (tok.cls_token_id, tok.sep_token_id)
    assert len({tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id,
                tok.mask_token_id}) == 5  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_round_trips_through_save_pretrained(saved: dict[str, Path], family: str) -> None:
    tok, reloaded = tokenizer_for(family), _load_tokenizer(saved[family])
    assert type(reloaded) is type(tok)
    assert reloaded.model_max_length == tok.model_max_length
    texts = [CONTEXT, "Great acting, a dull plot... 10/10 #cinema", "unusual wordz here"]
    assert reloaded(texts).data == tok(texts).data
    pair = (["a question?"] * 3, texts)
    assert reloaded(*pair, padding=True).data == tok(*pair, padding=True).data
    assert reloaded.decode(tok(CONTEXT)["input_ids"], skip_special_tokens=True).strip().lower() == (
        CONTEXT
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_token_type_ids_only_for_models_with_segments(family: str) -> None:
    tok, config = tokenizer_for(family), tiny_config(family)
    encoded = tok(QUESTION, CONTEXT)
    assert ("token_type_ids" in encoded) is (family in WITH_TOKEN_TYPES)
    assert (int(getattr(config, "type_vocab_size", 0) or 0) > 1) is (family in WITH_TOKEN_TYPES)
    if family in WITH_TOKEN_TYPES:
        types = encoded["token_type_ids"]
        assert 0 in types and 1 in types and types == sorted(types)


@pytest.mark.parametrize("family", FAMILIES)
def test_pair_encoding_has_both_sequences(family: str) -> None:
    tok = tokenizer_for(family)
    encoded = tok(QUESTION, CONTEXT)
    seq = encoded.sequence_ids()
    assert seq[0] is None and seq[-1] is None and {0, 1} <= set(seq)
    ids = encoded["input_ids"]
    specials = [i for i, s in zip(ids, seq, strict=True) if s is None]
    assert specials[0] == tok.cls_token_id and set(specials[1:]) == {tok.sep_token_id}
    single = tok(QUESTION)["input_ids"]
    assert ids[: len(single)] == single


@pytest.mark.parametrize("family", FAMILIES)
def test_offsets_map_context_words_back(family: str) -> None:
    """What question answering needs: the tokens over a word's characters span that word."""
    encoded = tokenizer_for(family)(QUESTION, CONTEXT, return_offsets_mapping=True)
    spans = [o for o, s in zip(encoded["offset_mapping"], encoded.sequence_ids(), strict=True)
             if s == 1]  # fmt: skip
    start = 0
    for word in CONTEXT.split():
        begin = CONTEXT.index(word, start)
        end = start = begin + len(word)
        over = [(a, b) for a, b in spans if a < end and b > begin]
        assert over, word
        assert CONTEXT[min(a for a, _ in over) : max(b for _, b in over)].strip() == word


@pytest.mark.parametrize("family", FAMILIES)
def test_longest_input_fits_the_positions(family: str, saved: dict[str, Path]) -> None:
    tok = tokenizer_for(family)
    batch = tok(" ".join([CONTEXT] * 20), truncation=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] == tok.model_max_length
    model = auto_class("sequence_classification").from_pretrained(str(saved[family])).eval()
    with torch.no_grad():
        assert model(**batch).logits.shape == (1, 2)


@pytest.mark.parametrize("family", SLOW_FAMILIES)
def test_slow_files_load_as_the_family_class(tmp_path: Path, family: str) -> None:
    spec = FAMILY_TOKENIZERS[family]
    folder = write_tiny_encoder(tmp_path, family, tokenizer_files="slow")
    names = {p.name for p in folder.iterdir()}
    assert names == {"config.json", "model.safetensors", "tokenizer_config.json", *spec.slow_files}
    tok, fast = _load_tokenizer(folder), tokenizer_for(family)
    assert type(tok) is type(fast)
    config = tiny_config(family)
    assert len(tok) == config.vocab_size
    assert tok.pad_token_id == config.pad_token_id
    assert tok.model_input_names == fast.model_input_names
    encoded = tok(QUESTION, CONTEXT, return_tensors="pt")
    # The same training as the fast files: the same ids
    assert encoded["input_ids"][0].tolist() == fast(QUESTION, CONTEXT)["input_ids"]
    assert tok.get_vocab() == fast.get_vocab()
    model = auto_class("sequence_classification").from_pretrained(str(folder)).eval()
    with torch.no_grad():
        assert model(**encoded).logits.shape == (1, 2)


def test_a_family_without_slow_files_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modernbert has no slow tokenizer files"):
        write_tiny_encoder(tmp_path, "modernbert", tokenizer_files="slow")
    with pytest.raises(ValueError, match="tokenizer_files must be"):
        write_tiny_encoder(tmp_path, "bert", tokenizer_files="json")


def test_training_gives_the_same_ids_in_another_process() -> None:
    script = (
        "import json; from tests.factories.encoders import tokenizer_for; "
        f"print(json.dumps({{f: tokenizer_for(f).get_vocab() for f in {list(FAMILIES)!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    other = json.loads(out.stdout.strip().splitlines()[-1])
    assert other == {f: tokenizer_for(f).get_vocab() for f in FAMILIES}
