"""Read a safetensors header (8-byte little-endian length + JSON) without loading tensors."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from app.services.json_input import JsonInputError, loads

# Same bound as the safetensors library.
MAX_HEADER_BYTES = 100 * 1024 * 1024
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
# No tensor a model holds has more dimensions (and a bound keeps the size product small).
MAX_DIMS = 16


class SafetensorsError(Exception):
    pass


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _read_exact(f: Readable, n: int) -> bytes:
    chunks: list[bytes] = []
    left = n
    while left > 0:
        chunk = f.read(min(left, 1024 * 1024))
        if not chunk:
            raise SafetensorsError("file ends inside the header")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_header(f: Readable, file_size: int, *, max_header_bytes: int = MAX_HEADER_BYTES) -> bytes:
    """The header's JSON bytes (the first 8 + n bytes of the file), checked for length only."""
    if file_size < 8:
        raise SafetensorsError("file too small for a safetensors header")
    (n,) = struct.unpack("<Q", _read_exact(f, 8))
    if n > max_header_bytes or 8 + n > file_size:
        raise SafetensorsError(f"header length {n} out of bounds")
    return _read_exact(f, n)


def parse_header(raw: bytes, file_size: int) -> dict[str, TensorInfo]:
    """Validate a header against the file's size; returns its tensors by name."""
    try:
        header: Any = loads(raw)
    except JsonInputError as exc:
        raise SafetensorsError(f"header is not JSON: {exc.message}") from exc
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    data_len = file_size - 8 - len(raw)
    spans: list[tuple[int, int]] = []
    tensors: dict[str, TensorInfo] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise SafetensorsError(f"tensor {name!r}: bad entry")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise SafetensorsError(f"tensor {name!r}: unknown dtype {dtype!r}")
        if not (
            isinstance(shape, list) and len(shape) <= MAX_DIMS
            and all(type(d) is int and d >= 0 for d in shape)
        ):  # fmt: skip
            raise SafetensorsError(f"tensor {name!r}: bad shape")
        if not (
            isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1] <= data_len
        ):  # fmt: skip
            raise SafetensorsError(f"tensor {name!r}: data offsets out of bounds")
        tensor = TensorInfo(str(dtype), tuple(shape))
        if tensor.numel * DTYPE_BYTES[tensor.dtype] != offsets[1] - offsets[0]:
            raise SafetensorsError(f"tensor {name!r}: size does not match its shape")
        spans.append((offsets[0], offsets[1]))
        tensors[name] = tensor
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise SafetensorsError("tensor data overlaps or leaves gaps")
        end = stop
    if end != data_len:
        raise SafetensorsError("tensor data does not cover the file")
    return tensors


def count_parameters(f: Readable, file_size: int) -> int:
    """Validate the header against the file size and return the number of parameters."""
    tensors = parse_header(read_header(f, file_size), file_size)
    return sum(t.numel for t in tensors.values())
