from __future__ import annotations

from pathlib import Path

import pytest

from app.services.tabular import Table, TableError, read_table


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
    assert table.rows == [{"a": "x", "b": "1", "c": ""}, {"a": "", "c": "true", "b": ""}]
    assert table.lines == [1, 3]


@pytest.mark.parametrize(
    ("fmt", "data", "line", "column"),
    [
        ("csv", b"text,label\nok,1\nb\xe9d,0\n", 3, None),
        ("csv", b"text,label\nok,1\nextra,1,2\n", 3, None),
        ("csv", b"text,,label\n", 1, None),
        ("jsonl", b'{"a": 1}\n{"a": [1]}\n', 2, "a"),
        ("jsonl", b"", 1, None),
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
