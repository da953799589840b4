"""Check an uploaded HF model archive without torch: config, safetensors weights, tokenizer.

The archive is read once, in its own order (`ArchiveScan`): what the checks need is gathered
on the way (the first bytes of every file, config.json, the shard index and the safetensors
headers, each bounded, and each tokenizer file's verdict) and judged afterwards, in this
order: the config (its family's entry in app.architectures, the sizes read with the family's
keys), pickles, the family's tokenizer files (present, then loadable: invalid_tokenizer naming
the file; app.services.tokenizer_check), then the weights, which must cover every parameter
the config implies (app.architectures.coverage). The config checks are
app.services.model_config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.architectures import Architecture
from app.architectures.coverage import LayoutError, check_coverage
from app.services.archives import (
    ArchiveError,
    ArchiveFormat,
    ArchiveScan,
    Member,
    MemberStream,
    model_root,
    read_bounded,
)
from app.services.json_input import JsonInputError, loads
from app.services.model_config import check_config, checked_config
from app.services.safetensors_header import (
    SafetensorsError,
    TensorInfo,
    parse_header,
    read_header,
)
from app.services.tokenizer_check import READ_BYTES as TOKENIZER_READ_BYTES
from app.services.tokenizer_check import TokenizerInvalid, checks_whole, files_used
from app.services.tokenizer_check import check as check_tokenizer_file

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
SHARD_RE = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")
INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "model.safetensors"
JSON_NAMES = ("config.json", INDEX_NAME)
MAX_JSON_BYTES = 4 * 1024 * 1024
# A BERT's header (48 layers) is about 100 KB; the headers are kept until the config is checked.
MAX_HEADER_BYTES = 2 * 1024 * 1024
MAX_HEADERS_TOTAL_BYTES = 8 * 1024 * 1024
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


def _parse_json(name: str, raw: bytes | None) -> Any:
    if raw is None:
        raise _invalid(f"{name} is too large (over {MAX_JSON_BYTES} bytes)")
    try:
        return loads(raw)
    except JsonInputError as exc:
        raise _invalid(f"{name}: {exc.message}") from exc


class _Prefixed:
    """`head` (bytes already read), then the rest of the member."""

    def __init__(self, head: bytes, rest: MemberStream) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            out, self._head = self._head[:size], self._head[size:]
            return out
        return self._rest.read(size)


@dataclass
class _Gathered:
    """What one pass over the archive keeps: bounded, whatever the archive holds."""

    heads: dict[str, bytes] = field(default_factory=dict)  # file -> its first 4 bytes
    json: dict[str, bytes | None] = field(default_factory=dict)  # None: too large
    headers: dict[str, bytes | SafetensorsError] = field(default_factory=dict)
    header_bytes: int = 0
    tops: set[str] = field(default_factory=set)
    tokenizer: dict[str, str | None] = field(default_factory=dict)  # file -> problem, or None

    def candidate(self, name: str) -> bool:
        """Only files at the root, or in the one top-level folder, can be the model's."""
        parts = name.split("/")
        self.tops.add(parts[0])
        if len(self.tops) > 1:  # then the model's files are at the root, if anywhere
            self._drop_nested()
        return len(parts) == 1 or (len(parts) == 2 and len(self.tops) == 1)

    def _drop_nested(self) -> None:
        for store in (self.json, self.headers, self.tokenizer):
            for key in [k for k in store if "/" in k]:
                value = store.pop(key)
                if isinstance(value, bytes) and store is self.headers:
                    self.header_bytes -= len(value)

    def take(self, member: Member, stream: MemberStream) -> None:
        base = member.name.rsplit("/", 1)[-1]
        wanted = self.candidate(member.name)
        if wanted and base in JSON_NAMES:
            if member.size > MAX_JSON_BYTES:
                self.json[member.name] = None
                self.heads[member.name] = read_bounded(stream, 4)
            else:
                raw = read_bounded(stream, MAX_JSON_BYTES)
                self.json[member.name] = raw
                self.heads[member.name] = raw[:4]
            return
        if wanted and base in TOKENIZER_READ_BYTES:
            self._take_tokenizer(member, base, stream)
            return
        head = read_bounded(stream, 8) if member.size >= 2 else b""
        self.heads[member.name] = head[:4]
        if wanted and (base == WEIGHTS_NAME or SHARD_RE.match(base)):
            self._take_header(member, _Prefixed(head, stream))

    def _take_tokenizer(self, member: Member, base: str, stream: MemberStream) -> None:
        """Judged as it is read (only the verdict is kept); a file over its bound is not."""
        limit = TOKENIZER_READ_BYTES[base]
        data = read_bounded(stream, limit if checks_whole(base) else min(limit, member.size))
        self.heads[member.name] = data[:4]
        if checks_whole(base) and member.size > limit:
            return
        try:
            check_tokenizer_file(base, data, member.size)
        except TokenizerInvalid as exc:
            self.tokenizer[member.name] = exc.message
        else:
            self.tokenizer[member.name] = None

    def _take_header(self, member: Member, stream: _Prefixed) -> None:
        try:
            raw = read_header(stream, member.size, max_header_bytes=MAX_HEADER_BYTES)
        except SafetensorsError as exc:
            self.headers[member.name] = exc
            return
        self.header_bytes += len(raw)
        if self.header_bytes > MAX_HEADERS_TOTAL_BYTES:
            raise _invalid(
                f"the safetensors headers are over {MAX_HEADERS_TOTAL_BYTES} bytes in all"
            )
        self.headers[member.name] = raw


def _refuse_pickles(files: dict[str, int], heads: dict[str, bytes]) -> None:
    """Pickle-based weights are refused by name and, renamed, by their first bytes; they are
    never unpickled."""
    named = sorted(n for n in files if n.lower().endswith(PICKLE_SUFFIXES))
    if named:
        raise ArchiveError(
            "unsafe_weights", f"pickle-based files are not accepted: {', '.join(named)}"
        )
    for name in files:
        head = heads.get(name, b"")
        if head.startswith(PICKLE_MAGIC) or head == ZIP_MAGIC:
            what = "a pickle" if head.startswith(PICKLE_MAGIC) else "a zip (torch.save) file"
            raise ArchiveError(
                "unsafe_weights", f"{name} is {what}; only safetensors weights are accepted"
            )


def _num_labels(config: dict[str, Any]) -> int | None:
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    n = config.get("num_labels")
    return n if type(n) is int else None


def _weight_files(files: dict[str, int], prefix: str, got: _Gathered) -> dict[str, list[str]]:
    """Each weight file -> the tensors the index says it holds (empty: a single file)."""
    if f"{prefix}{WEIGHTS_NAME}" in files:
        return {f"{prefix}{WEIGHTS_NAME}": []}
    index = f"{prefix}{INDEX_NAME}"
    if index not in files:
        raise _invalid("weights must be model.safetensors or sharded safetensors with an index")
    data = _parse_json(INDEX_NAME, got.json.get(index))
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise _invalid(f"{INDEX_NAME} has no weight_map")
    by_shard: dict[str, list[str]] = {}
    for tensor, shard in weight_map.items():
        by_shard.setdefault(str(shard), []).append(tensor)
    totals = set()
    for shard in sorted(by_shard):
        match = SHARD_RE.match(shard)
        if match is None or f"{prefix}{shard}" not in files:
            raise _invalid(f"{INDEX_NAME} names a missing or misnamed shard {shard[:80]!r}")
        totals.add(int(match.group(2)))
    if len(totals) != 1 or totals.pop() != len(by_shard):
        raise _invalid("the shard set is incomplete")
    return {f"{prefix}{s}": by_shard[s] for s in sorted(by_shard)}


def _tensors(
    files: dict[str, int], weights: dict[str, list[str]], got: _Gathered
) -> dict[str, TensorInfo]:
    """All tensors of the weight files, each checked against its file and the index."""
    out: dict[str, TensorInfo] = {}
    for name, listed in weights.items():
        raw = got.headers.get(name)
        try:
            if raw is None:
                raise SafetensorsError("not a safetensors file")
            if isinstance(raw, SafetensorsError):
                raise raw
            tensors = parse_header(raw, files[name])
        except SafetensorsError as exc:
            raise _invalid(f"{name.rsplit('/', 1)[-1]}: {exc}") from exc
        if listed and set(listed) != set(tensors):
            odd = sorted(set(listed) ^ set(tensors))[0]
            raise _invalid(f"{INDEX_NAME} and {name.rsplit('/', 1)[-1]} disagree on {odd!r}")
        for tensor, info in tensors.items():
            if tensor in out:
                raise _invalid(f"tensor {tensor!r} is in two weight files")
            out[tensor] = info
    return out


def _check_tokenizer(
    arch: Architecture, files: dict[str, int], prefix: str, verdicts: dict[str, str | None]
) -> None:
    """One of the family's tokenizer file sets, in full, and the files transformers would load
    of those present, each loadable."""
    sets = arch.tokenizer_files
    if any(all(f"{prefix}{n}" in files for n in s) for s in sets):
        present = {n[len(prefix) :] for n in files if n.startswith(prefix)}
        for name in files_used(present, sets):
            problem = verdicts.get(f"{prefix}{name}")
            if problem is not None:
                raise ArchiveError("invalid_tokenizer", f"{name} is broken: {problem}")
        return
    partial = next((s for s in sets if any(f"{prefix}{n}" in files for n in s)), None)
    lacking = (
        f" ({', '.join(n for n in partial if f'{prefix}{n}' not in files)} is missing)"
        if partial else ""
    )  # fmt: skip
    accepted = ", or ".join(" and ".join(s) for s in sets)
    raise _invalid(f"a tokenizer is required: a {arch.display} model needs {accepted}{lacking}")


def _judge(members: list[Member], got: _Gathered) -> ModelInfo:
    files = {m.name: m.size for m in members if not m.is_dir}
    prefix = model_root(members)
    config, family = checked_config(
        _parse_json("config.json", got.json.get(f"{prefix}config.json"))
    )
    _refuse_pickles(files, got.heads)
    _check_tokenizer(family, files, prefix, got.tokenizer)
    tensors = _tensors(files, _weight_files(files, prefix, got), got)
    try:
        coverage = check_coverage(family, config, tensors)
    except LayoutError as exc:
        raise ArchiveError("weights_mismatch", exc.message) from exc
    archs = config.get("architectures")
    arch = archs[0] if archs else str(config["model_type"])
    return ModelInfo(config, arch[:64], _num_labels(config), coverage.num_parameters)


def inspect_archive(
    path: Path, fmt: ArchiveFormat, *, max_members: int, max_total_bytes: int
) -> ModelInfo:
    got = _Gathered()
    with ArchiveScan(path, fmt, max_members=max_members, max_total_bytes=max_total_bytes) as scan:
        for member, stream in scan:
            if stream is not None:
                got.take(member, stream)
        members = scan.members
    return _judge(members, got)


__all__ = ["ModelInfo", "check_config", "inspect_archive"]
