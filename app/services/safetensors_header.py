"""Read a safetensors header (8-byte little-endian length + JSON) without loading tensors."""

from __future__ import annotations

import json
import math
import struct
from typing import IO, Any

# Same bound as the safetensors library.
MAX_HEADER_BYTES = 100 * 1024 * 1024
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


class SafetensorsError(Exception):
    pass


def _read_exact(f: IO[bytes], n: int) -> bytes:
    chunks: list[bytes] = []
    left = n
    while left > 0:
        chunk = f.read(min(left, 1024 * 1024))
        if not chunk:
            raise SafetensorsError("file ends inside the header")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def count_parameters(f: IO[bytes], file_size: int) -> int:
    """Validate the header against the file size and return the number of parameters."""
    if file_size < 8:
        raise SafetensorsError("file too small for a safetensors header")
    (n,) = struct.unpack("<Q", _read_exact(f, 8))
    if n > MAX_HEADER_BYTES or 8 + n > file_size:
        raise SafetensorsError(f"header length {n} out of bounds")
    try:
        header: Any = json.loads(_read_exact(f, n))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    data_len = file_size - 8 - n
    spans: list[tuple[int, int]] = []
    params = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise SafetensorsError(f"tensor {name!r}: bad entry")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise SafetensorsError(f"tensor {name!r}: unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise SafetensorsError(f"tensor {name!r}: bad shape")
        if not (
            isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1] <= data_len
        ):  # fmt: skip
            raise SafetensorsError(f"tensor {name!r}: data offsets out of bounds")
        count = math.prod(shape)
        if count * DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
            raise SafetensorsError(f"tensor {name!r}: size does not match its shape")
        spans.append((offsets[0], offsets[1]))
        params += count
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise SafetensorsError("tensor data overlaps or leaves gaps")
        end = stop
    if end != data_len:
        raise SafetensorsError("tensor data does not cover the file")
    return params
