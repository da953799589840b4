from __future__ import annotations

import gc
import json
import time
import tracemalloc
from pathlib import Path

import pytest

from app.services.tabular import Table, TableError, TableReader, read_table


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_csv_with_quoted_newline_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b'\xef\xbb\xbftext,label\n"two\nlines",1\nplain,0\n\n')
    table = read_table(path, "csv")
    assert isinstance(table, Table)
    assert table.columns == ["text", "label"]
    assert table.rows == [{"text": "two\nlines", "label": "1"}, {"text": "plain", "label": "0"}]
    assert table.lines == [3, 4]


def test_tsv_keeps_quotes_literally(tmp_path: Path) -> None:
    path = write(tmp_path, "d.tsv", b'sentence\tlabel\nsay "hi\tx\n')
    assert read_table(path, "tsv").rows == [{"sentence": 'say "hi', "label": "x"}]


def test_jsonl_columns_are_the_union_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", b'{"a": "x", "b": 1}\n\n{"c": true, "a": null}\n')
    table = read_table(path, "jsonl")
    assert table.columns == ["a", "b", "c"]
    # Rows are compact: a key a line lacks is not stored, and reads as empty.
    assert table.rows == [{"a": "x", "b": "1"}, {"a": "", "c": "true"}]
    assert [[row[c] for c in table.columns] for row in table.rows] == [
        ["x", "1", ""],
        ["", "", "true"],
    ]
    assert table.rows[0].get("c") is None
    assert table.lines == [1, 3]


def test_keep_holds_only_those_columns_and_still_checks_every_cell(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", b'{"a": "x", "b": 1}\n{"c": 2.5, "b": false}\n')
    reader = TableReader(path, "jsonl", keep=["b", "z"])
    assert [row for _, row in reader] == [{"b": "1"}, {"b": "false"}]
    assert reader.columns == ["a", "b", "c"]
    path = write(tmp_path, "e.jsonl", b'{"a": "x", "b": 1}\n{"a": {"deep": 1}, "b": 2}\n')
    with pytest.raises(TableError) as info:
        list(TableReader(path, "jsonl", keep=["b"]))
    assert (info.value.line, info.value.column) == (2, "a")
    path = write(tmp_path, "d.csv", b"a,b,c\n1,2,3\n")
    assert [row for _, row in TableReader(path, "csv", keep=["c", "a"])] == [{"a": "1", "c": "3"}]


def test_columns_over_the_bound_are_refused_at_the_line_that_adds_them(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", b'{"a": 1, "b": 1}\n{"b": 2, "c": 3}\n{"d": 1}\n')
    with pytest.raises(TableError) as info:
        read_table(path, "jsonl", max_columns=3)
    assert info.value.line == 3
    assert "brings the columns (distinct keys) to 4; at most 3 columns" in info.value.message
    assert read_table(path, "jsonl", max_columns=4).columns == ["a", "b", "c", "d"]
    path = write(tmp_path, "d.csv", b"a,b,c,d\n1,2,3,4\n")
    with pytest.raises(TableError, match="4 columns in the header; at most 3") as info:
        read_table(path, "csv", max_columns=3)
    assert info.value.line == 1


def test_a_wide_header_is_checked_in_linear_time(tmp_path: Path) -> None:
    # 40,000 columns: the duplicate check was columns.count(c) per column (about 26 s).
    names = [f"c{i}" for i in range(40_000)]
    path = write(tmp_path, "d.csv", (",".join([*names, "c7"]) + "\n").encode())
    start = time.process_time()
    with pytest.raises(TableError, match="duplicate column 'c7'"):
        read_table(path, "csv")
    assert time.process_time() - start < 1.0


def test_reading_every_column_does_not_pad_rows(tmp_path: Path) -> None:
    # What the worker reads (no bound): 60 lines that each add 5,000 new keys. Padding every
    # row with every column seen cost about 6 CPU-seconds and 500 MB; compact rows do not.
    lines = (json.dumps({"text": "t", "label": i % 2, **{f"k{i}_{j}": 0 for j in range(5000)}})
             for i in range(60))  # fmt: skip
    path = write(tmp_path, "d.jsonl", "\n".join(lines).encode())
    gc.collect()
    start = time.process_time()
    read_table(path, "jsonl")
    cpu = time.process_time() - start
    gc.collect()
    tracemalloc.start()  # a second read: tracing slows allocation, so it is not timed
    try:
        table = read_table(path, "jsonl")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(table.columns) == 2 + 60 * 5000 and len(table.rows) == 60
    assert sum(map(len, table.rows)) == 60 * 5002
    assert table.rows[59]["k0_0"] == "" and table.rows[0]["k0_0"] == "0"
    assert cpu < 2.0, f"{cpu:.2f} CPU-seconds"
    assert peak < 200 * 1024**2, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize(
    ("fmt", "data", "line", "column"),
    [
        ("csv", b"text,label\nok,1\nb\xe9d,0\n", 3, None),
        ("csv", b"text,label\nok,1\nextra,1,2\n", 3, None),
        ("csv", b"text,,label\n", 1, None),
        ("jsonl", b'{"a": 1}\n{"a": [1]}\n', 2, "a"),
        ("jsonl", b"", 1, None),
        # The bounded JSON parser: deep nesting, a 5000-digit integer, NaN, a float overflow.
        (
            "jsonl",
            b'{"a": 1}\n{"a": 2}\n{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
            3,
            None,
        ),
        ("jsonl", b'{"a": 1}\n{"a": ' + b"9" * 5000 + b"}\n", 2, None),
        ("jsonl", b'{"a": NaN}\n', 1, None),
        ("jsonl", b'{"a": 1}\n{"b": 1e999}\n', 2, "b"),
    ],
)
def test_errors_name_line_and_column(
    tmp_path: Path, fmt: str, data: bytes, line: int, column: str | None
) -> None:
    path = write(tmp_path, f"d.{fmt}", data)
    with pytest.raises(TableError) as info:
        read_table(path, fmt)  # type: ignore[arg-type]
    assert info.value.line == line
    assert info.value.column == column
    assert f"line {line}" in str(info.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
        (b'{"label": ' + b"9" * 5000 + b"}", "an integer with more than 20 digits"),
        (b'{"text": oops}', "not valid JSON: Expecting value (at character 10)"),
    ],
)
def test_json_faults_are_messages_naming_the_line(
    tmp_path: Path, line: bytes, message: str
) -> None:
    path = write(tmp_path, "d.jsonl", b'{"text": "a", "label": 1}\n' + line + b"\n")
    with pytest.raises(TableError) as info:
        read_table(path, "jsonl")
    assert (info.value.line, info.value.message) == (2, message)
