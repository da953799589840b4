"""inspect_archive: the weights must cover every parameter the config implies (names, shapes,
dtypes); only a task head may be missing. The torch-free layout of every family is checked
against transformers in tests/app/architectures."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from app.services.archives import ArchiveError
from app.services.model_inspect import inspect_archive
from tests.factories.archives import bert_config, model_files, targz_bytes, tensors, zip_bytes
from tests.factories.tiny_bert import archive, write_tiny_bert

LIMITS = {"max_members": 64, "max_total_bytes": 100_000_000}
MAX_CONFIG = bert_config(
    hidden_size=4096, num_hidden_layers=48, vocab_size=250_000, num_attention_heads=64,
    intermediate_size=16_384, max_position_embeddings=8192, type_vocab_size=16,
)  # fmt: skip


def inspect(tmp_path: Path, data: bytes, fmt: str = "zip") -> Any:
    path = tmp_path / f"m.{fmt}"
    path.write_bytes(data)
    return inspect_archive(path, "zip" if fmt == "zip" else "tar.gz", **LIMITS)


def refused(tmp_path: Path, data: bytes, code: str, fmt: str = "zip") -> str:
    with pytest.raises(ArchiveError) as info:
        inspect(tmp_path, data, fmt)
    assert info.value.code == code, info.value.message
    return info.value.message


def st_bytes(ts: dict[str, np.ndarray], tmp_path: Path) -> bytes:
    path = tmp_path / "w.safetensors"
    save_file(ts, str(path))
    return path.read_bytes()


def empty_safetensors() -> bytes:
    return struct.pack("<Q", 2) + b"{}"


@pytest.mark.parametrize(
    ("fmt", "shard", "with_head"),
    [("zip", None, True), ("tar.gz", None, False), ("tar.gz", "400KB", False),
     ("zip", "400KB", True)],
    ids=["zip-head", "targz-base", "targz-sharded", "zip-sharded-head"],
)  # fmt: skip
def test_a_real_tiny_bert_is_accepted(
    tmp_path: Path, fmt: str, shard: str | None, with_head: bool
) -> None:
    from transformers import AutoModelForSequenceClassification

    folder = write_tiny_bert(tmp_path / "m", with_head=with_head, max_shard_size=shard)
    if shard:
        assert (folder / "model.safetensors.index.json").is_file()
    path = archive(folder, tmp_path / f"m.{fmt}", fmt, prefix="tiny")
    info = inspect_archive(path, "zip" if fmt == "zip" else "tar.gz", **LIMITS)
    model = AutoModelForSequenceClassification.from_pretrained(str(folder))
    expected = sum(p.numel() for n, p in model.named_parameters())
    if not with_head:  # a bare BertModel: the worker adds the head
        expected -= model.classifier.weight.numel() + model.classifier.bias.numel()
    assert info.num_parameters == expected


def test_max_config_without_tensors_is_refused_naming_the_missing(tmp_path: Path) -> None:
    files = {**model_files(weights="none", config=MAX_CONFIG),
             "model.safetensors": empty_safetensors()}  # fmt: skip
    data = zip_bytes(files)
    assert len(data) < 3000  # the 2.4 KB archive
    message = refused(tmp_path, data, "weights_mismatch")
    assert "773 of the 773 tensors the config implies are missing" in message
    assert "embeddings.word_embeddings.weight [250000, 4096]" in message
    assert "and 768 more" in message
    assert "the BERT (MiniLM included) encoder has 10,723,860,480 parameters, these weights 0" in (
        message
    )


def with_tensors(tmp_path: Path, ts: dict[str, np.ndarray]) -> bytes:
    return zip_bytes({**model_files(weights="none"), "model.safetensors": st_bytes(ts, tmp_path)})


def test_a_missing_encoder_tensor_is_named(tmp_path: Path) -> None:
    ts = tensors()
    del ts["bert.encoder.layer.1.output.dense.weight"]
    message = refused(tmp_path, with_tensors(tmp_path, ts), "weights_mismatch")
    assert "1 of the 39 tensors" in message
    assert "bert.encoder.layer.1.output.dense.weight [8, 16]" in message


def test_a_wrong_shape_is_refused(tmp_path: Path) -> None:
    ts = tensors()
    ts["bert.encoder.layer.0.intermediate.dense.weight"] = np.zeros((8, 16), np.float32)
    message = refused(tmp_path, with_tensors(tmp_path, ts), "weights_mismatch")
    assert "bert.encoder.layer.0.intermediate.dense.weight has shape [8, 16], not [16, 8]" in (
        message
    )


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.float64])
def test_a_non_float_or_double_dtype_is_refused(tmp_path: Path, dtype: Any) -> None:
    ts = tensors()
    ts["bert.embeddings.LayerNorm.weight"] = np.ones(8, dtype)
    message = refused(tmp_path, with_tensors(tmp_path, ts), "weights_mismatch")
    assert "bert.embeddings.LayerNorm.weight has dtype" in message


def test_a_misshapen_head_is_refused(tmp_path: Path) -> None:
    ts = tensors()
    ts["classifier.weight"] = np.zeros((2, 9), np.float32)
    assert "task head" in refused(tmp_path, with_tensors(tmp_path, ts), "weights_mismatch")
    del ts["classifier.weight"]
    assert "only classifier.bias" in refused(
        tmp_path, with_tensors(tmp_path, ts), "weights_mismatch"
    )


def test_head_and_pooler_may_be_absent_but_not_half_a_pooler(tmp_path: Path) -> None:
    ts = {k: v for k, v in tensors().items() if not k.startswith(("classifier.", "bert.pooler"))}
    info = inspect(tmp_path, with_tensors(tmp_path, ts))
    assert info.num_parameters == sum(int(t.size) for t in ts.values())
    ts["bert.pooler.dense.weight"] = np.zeros((8, 8), np.float32)
    assert "bert.pooler.dense.bias [8]" in refused(
        tmp_path, with_tensors(tmp_path, ts), "weights_mismatch"
    )


def test_unprefixed_and_legacy_names_are_accepted(tmp_path: Path) -> None:
    """BertModel saves without `bert.`; old checkpoints name LayerNorm weights gamma/beta."""
    ts = {k.removeprefix("bert."): v for k, v in tensors().items()}
    ts["embeddings.LayerNorm.gamma"] = ts.pop("embeddings.LayerNorm.weight")
    ts["embeddings.LayerNorm.beta"] = ts.pop("embeddings.LayerNorm.bias")
    ts["cls.predictions.bias"] = np.zeros(8, np.float32)  # an unused pre-training head
    info = inspect(tmp_path, with_tensors(tmp_path, ts))
    assert info.num_parameters == sum(int(t.size) for t in tensors().values())


def test_a_parameter_under_two_names_is_refused(tmp_path: Path) -> None:
    ts = tensors()
    ts["embeddings.word_embeddings.weight"] = np.zeros((8, 8), np.float32)
    assert "both with and without" in refused(
        tmp_path, with_tensors(tmp_path, ts), "weights_mismatch"
    )
    ts = tensors()
    ts["bert.embeddings.LayerNorm.gamma"] = np.ones(8, np.float32)
    assert "twice" in refused(tmp_path, with_tensors(tmp_path, ts), "weights_mismatch")


def test_shards_must_agree_with_their_index(tmp_path: Path) -> None:
    files = model_files(weights="sharded")
    index = json.loads(files["model.safetensors.index.json"])
    moved = next(iter(index["weight_map"]))
    index["weight_map"][moved] = "model-00002-of-00002.safetensors"
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    assert "disagree" in refused(tmp_path, targz_bytes(files), "invalid_model", "tar.gz")


def deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize(
    ("member", "content", "part"),
    [
        ("config.json", ('{"model_type": "bert", "x": ' + deep(100_000) + "}").encode(),
         "config.json: nested deeper than 64 levels"),
        ("config.json", ('{"model_type": "bert", "num_labels": ' + "9" * 5000 + "}").encode(),
         "config.json: an integer with more than 20 digits"),
        ("model.safetensors", struct.pack("<Q", 200_000) + deep(100_000).encode(),
         "model.safetensors: header is not JSON: nested deeper than 64 levels"),
        ("model.safetensors", (lambda h: struct.pack("<Q", len(h)) + h)(
            b'{"w": {"dtype": "F32", "shape": [' + b"1" * 5000 + b'], "data_offsets": [0, 4]}}'),
         "model.safetensors: header is not JSON: an integer with more than 20 digits"),
    ],
    ids=["config-deep", "config-5000-digits", "header-deep", "header-5000-digits"],
)  # fmt: skip
def test_hostile_json_is_invalid_model_naming_the_file(
    tmp_path: Path, member: str, content: bytes, part: str
) -> None:
    assert part in refused(tmp_path, zip_bytes({**model_files(), member: content}),
                           "invalid_model")  # fmt: skip


@pytest.mark.parametrize(
    "index",
    ['{"weight_map": ' + deep(100_000) + "}",
     '{"weight_map": {"w": "model-00001-of-00001.safetensors"}, "n": ' + "7" * 5000 + "}"],
    ids=["deep", "5000-digits"],
)  # fmt: skip
def test_hostile_index_is_invalid_model_naming_the_file(tmp_path: Path, index: str) -> None:
    files = {**model_files(weights="sharded"), "model.safetensors.index.json": index.encode()}
    message = refused(tmp_path, targz_bytes(files), "invalid_model", "tar.gz")
    assert message.startswith("model.safetensors.index.json: ")


@pytest.mark.parametrize(
    ("changes", "part"),
    [({"num_labels": 2**31}, "num_labels must be an integer in 1..100000"),
     ({"num_labels": 10**19}, "num_labels"),
     ({"num_labels": True}, "num_labels"),
     ({"id2label": {str(i): str(i) for i in range(100_001)}}, "id2label must be an object"),
     ({"id2label": {"x": "a", "1": "b"}}, "id2label keys must be label numbers"),
     ({"id2label": {"0": "a", "1\n": "b"}}, "id2label keys must be label numbers"),
     ({"id2label": {"0": "a", "\u0661": "b"}}, "id2label keys must be label numbers"),
     ({"pad_token_id": 8}, "pad_token_id"),
     ({"add_cross_attention": True}, "needs is_decoder")],
    ids=["2^31", "10^19", "bool", "id2label-huge", "id2label-keys", "id2label-newline",
         "id2label-arabic-digit", "pad-id", "cross-attn"],
)  # fmt: skip
def test_config_values_that_overflow_or_break_loading_are_refused(
    tmp_path: Path, changes: dict[str, Any], part: str
) -> None:
    config = {**bert_config(), **changes}
    if "id2label" in changes:
        config.pop("label2id")
    message = refused(tmp_path, zip_bytes(model_files(config=config)), "invalid_model")
    assert part in message
