"""Check an uploaded HF model archive without torch: config, safetensors weights, tokenizer."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.archives import (
    ArchiveError,
    ArchiveFormat,
    ArchiveReader,
    Member,
    model_root,
    open_archive,
)
from app.services.safetensors_header import SafetensorsError, count_parameters

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
SHARD_RE = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")
INDEX_NAME = "model.safetensors.index.json"
MAX_JSON_BYTES = 16 * 1024 * 1024
LIMITS = {
    "hidden_size": 4096, "num_hidden_layers": 48, "vocab_size": 250_000,
    "num_attention_heads": 64, "intermediate_size": 16_384,
}  # fmt: skip
# Optional keys, bounded when present.
OPTIONAL_LIMITS = {"max_position_embeddings": 8192, "type_vocab_size": 16}
# BERT checkpoints AutoModelForSequenceClassification loads (a new head where needed).
SUPPORTED_ARCHITECTURES = frozenset({
    "BertModel", "BertForSequenceClassification", "BertForMaskedLM", "BertForPreTraining",
    "BertForNextSentencePrediction", "BertForTokenClassification", "BertForQuestionAnswering",
    "BertForMultipleChoice", "BertLMHeadModel",
})  # fmt: skip
# What pickle (protocol 2+) and torch.save's zip container start with.
PICKLE_MAGIC = tuple(bytes([0x80, p]) for p in range(2, 6))
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class ModelInfo:
    config: dict[str, Any]
    architecture: str
    num_labels: int | None
    num_parameters: int


def _invalid(message: str) -> ArchiveError:
    return ArchiveError("invalid_model", message)


def _read_json(reader: ArchiveReader, name: str, size: int) -> Any:
    if size > MAX_JSON_BYTES:
        raise _invalid(f"{name} is too large")
    with reader.open(name) as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(f"{name} is not valid JSON: {exc}") from exc


def check_config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise _invalid("config.json must hold a JSON object")
    if config.get("model_type") != "bert":
        raise _invalid(f"model_type must be 'bert', not {config.get('model_type')!r}")
    archs = config.get("architectures")
    if archs is not None:
        if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
            raise _invalid("config.json architectures must be a list of names")
        unknown = sorted(set(archs) - SUPPORTED_ARCHITECTURES)
        if unknown:
            raise _invalid(
                f"unsupported architecture {unknown[0]!r}; supported: "
                f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}"
            )
    bounds = {**LIMITS, **{k: v for k, v in OPTIONAL_LIMITS.items() if k in config}}
    for key, limit in bounds.items():
        value = config.get(key)
        if type(value) is not int or not 1 <= value <= limit:
            raise _invalid(f"config.json {key} must be an integer in 1..{limit}, got {value!r}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise _invalid("config.json hidden_size must be a multiple of num_attention_heads")
    return config


def _refuse_pickles(reader: ArchiveReader, members: list[Member]) -> None:
    """Pickle-based weights are refused by name and, renamed, by their first bytes; they are
    never unpickled. Only the first bytes of each file are read."""
    files = [m for m in members if not m.is_dir]
    named = sorted(m.name for m in files if m.name.lower().endswith(PICKLE_SUFFIXES))
    if named:
        raise ArchiveError(
            "unsafe_weights", f"pickle-based files are not accepted: {', '.join(named)}"
        )
    for m in files:
        if m.size < 2:
            continue
        with reader.open(m.name) as f:
            head = f.read(4)
        if head.startswith(PICKLE_MAGIC) or head == ZIP_MAGIC:
            what = "a pickle" if head.startswith(PICKLE_MAGIC) else "a zip (torch.save) file"
            raise ArchiveError(
                "unsafe_weights",
                f"{m.name} is {what}; only safetensors weights are accepted",
            )


def _num_labels(config: dict[str, Any]) -> int | None:
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    n = config.get("num_labels")
    return n if type(n) is int else None


def _weight_files(files: dict[str, int], prefix: str, reader: ArchiveReader) -> list[str]:
    if f"{prefix}model.safetensors" in files:
        return [f"{prefix}model.safetensors"]
    index = f"{prefix}{INDEX_NAME}"
    if index not in files:
        raise _invalid("weights must be model.safetensors or sharded safetensors with an index")
    data = _read_json(reader, index, files[index])
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise _invalid(f"{INDEX_NAME} has no weight_map")
    shards = sorted({str(v) for v in weight_map.values()})
    totals = set()
    for shard in shards:
        match = SHARD_RE.match(shard)
        if match is None or f"{prefix}{shard}" not in files:
            raise _invalid(f"{INDEX_NAME} names a missing or misnamed shard {shard!r}")
        totals.add(int(match.group(2)))
    if len(totals) != 1 or totals.pop() != len(shards):
        raise _invalid("the shard set is incomplete")
    return [f"{prefix}{s}" for s in shards]


def inspect_model(reader: ArchiveReader, members: list[Member]) -> ModelInfo:
    """Members were already checked for safety and limits."""
    files = {m.name: m.size for m in members if not m.is_dir}
    prefix = model_root(members)
    # The config is checked before a byte of any weights file is read.
    config = check_config(_read_json(reader, f"{prefix}config.json", files[f"{prefix}config.json"]))
    _refuse_pickles(reader, members)
    if f"{prefix}tokenizer.json" not in files and f"{prefix}vocab.txt" not in files:
        raise _invalid("a tokenizer (tokenizer.json or vocab.txt) is required")
    params = 0
    for name in _weight_files(files, prefix, reader):
        try:
            with reader.open(name) as f:
                params += count_parameters(f, files[name])
        except SafetensorsError as exc:
            raise _invalid(f"{name}: {exc}") from exc
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else "bert"
    return ModelInfo(config, arch[:64], _num_labels(config), params)


def inspect_archive(
    path: Path, fmt: ArchiveFormat, *, max_members: int, max_total_bytes: int
) -> ModelInfo:
    with open_archive(path, fmt) as reader:
        members = reader.members(max_members=max_members, max_total_bytes=max_total_bytes)
        return inspect_model(reader, members)
