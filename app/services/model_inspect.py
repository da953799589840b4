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
LIMITS = {"hidden_size": 4096, "num_hidden_layers": 48, "vocab_size": 250_000}


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
    for key, limit in LIMITS.items():
        value = config.get(key)
        if type(value) is not int or not 1 <= value <= limit:
            raise _invalid(f"config.json {key} must be an integer in 1..{limit}, got {value!r}")
    return config


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
    pickles = [n for n in files if n.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise ArchiveError(
            "unsafe_weights", f"pickle-based files are not accepted: {', '.join(sorted(pickles))}"
        )
    prefix = model_root(members)
    config = check_config(_read_json(reader, f"{prefix}config.json", files[f"{prefix}config.json"]))
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
