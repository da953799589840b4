from __future__ import annotations

import io
import json
import struct

import pytest

from app.services.safetensors_header import SafetensorsError, count_parameters
from tests.factories.archives import model_files, num_parameters


def blob(header: object, data: bytes) -> bytes:
    return raw_blob(json.dumps(header).encode(), data)


def raw_blob(raw: bytes, data: bytes) -> bytes:
    return struct.pack("<Q", len(raw)) + raw + data


def test_counts_parameters_of_a_real_file() -> None:
    data = model_files()["model.safetensors"]
    assert count_parameters(io.BytesIO(data), len(data)) == num_parameters()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x01", "too small"),
        (struct.pack("<Q", 2**40) + b"{}", "out of bounds"),
        (blob([1], b""), "not a JSON object"),
        (blob({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "dtype"),
        (blob({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "shape"),
        (blob({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
         "does not match"),
        (blob({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 4),
         "out of bounds"),
        (blob({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8), "gaps"),
        (blob({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8), "cover"),
        (struct.pack("<Q", 20_000) + b"[" * 10_000 + b"]" * 10_000, "nested deeper than 64"),
        (raw_blob(b'{"w": {"dtype": "U8", "shape": [' + b"9" * 5000 + b'], "data_offsets": '
                  b"[0, 1]}}", b"\0"), "more than 20 digits"),
        (blob({"w": {"dtype": "U8", "shape": [1] * 17, "data_offsets": [0, 1]}}, b"\0"),
         "bad shape"),
    ],
)  # fmt: skip
def test_rejects_bad_headers(data: bytes, match: str) -> None:
    with pytest.raises(SafetensorsError, match=match):
        count_parameters(io.BytesIO(data), len(data))
