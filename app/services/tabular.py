"""Read CSV, TSV and JSONL tables strictly; errors name the line and column.

The worker imports `read_table` to read uploaded data sets.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

TableFormat = Literal["csv", "tsv", "jsonl"]
MAX_ROW_CHARS = 100_000


class TableError(Exception):
    def __init__(self, message: str, line: int | None = None, column: str | None = None) -> None:
        where = ", ".join(
            p for p in (f"line {line}" if line else "", f"column {column!r}" if column else "") if p
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.line = line
        self.column = column


@dataclass
class Table:
    columns: list[str]
    rows: list[dict[str, str]]
    # The (last) physical line of each row, for error messages.
    lines: list[int] = field(default_factory=list)


def _check_encoding(path: Path, encoding: str) -> None:
    with path.open("rb") as f:
        # readline(limit): one huge line is never read whole into memory.
        lines = iter(lambda: f.readline(4 * MAX_ROW_CHARS + 1), b"")
        for lineno, raw in enumerate(lines, start=1):
            if len(raw) > 4 * MAX_ROW_CHARS:
                raise TableError(f"line longer than {MAX_ROW_CHARS} characters", lineno)
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise TableError(
                    f"not valid {encoding.upper()} (byte {exc.start + 1})", lineno
                ) from exc
            if b"\x00" in raw:
                raise TableError(f"NUL byte at byte {raw.index(0) + 1} (binary data?)", lineno)


def _check_header(columns: list[str]) -> list[str]:
    columns = [c.strip() for c in columns]
    if columns:
        columns[0] = columns[0].removeprefix("\ufeff").strip()  # a UTF-8 byte-order mark
    if not columns or all(not c for c in columns):
        raise TableError("no header row", 1)
    for c in columns:
        if not c:
            raise TableError("empty column name in the header", 1)
    dup = {c for c in columns if columns.count(c) > 1}
    if dup:
        raise TableError(f"duplicate column {sorted(dup)[0]!r} in the header", 1)
    return columns


def _read_delimited(path: Path, fmt: TableFormat, encoding: str) -> Table:
    kwargs: dict[str, object] = {"delimiter": ","}
    if fmt == "tsv":
        kwargs = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.reader(f, **kwargs)  # type: ignore[arg-type]
        try:
            header = next(reader, None)
            if header is None:
                raise TableError("the file is empty", 1)
            columns = _check_header(header)
            table = Table(columns=columns, rows=[])
            for record in reader:
                if not record or record == [""]:
                    continue
                if len(record) != len(columns):
                    raise TableError(
                        f"{len(record)} fields, the header has {len(columns)}", reader.line_num
                    )
                if sum(len(v) for v in record) > MAX_ROW_CHARS:
                    raise TableError(f"row longer than {MAX_ROW_CHARS} characters", reader.line_num)
                table.rows.append(dict(zip(columns, record, strict=True)))
                table.lines.append(reader.line_num)
        except csv.Error as exc:
            message = f"malformed {fmt.upper()}: {exc}"
            if "field larger than field limit" in str(exc):  # csv's own bound (131072)
                message = f"row longer than {MAX_ROW_CHARS} characters"
            raise TableError(message, reader.line_num) from exc
    return table


def _cell(value: object, line: int, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TableError("values must be strings or numbers", line, column)


def _read_jsonl(path: Path, encoding: str) -> Table:
    table = Table(columns=[], rows=[])
    seen: set[str] = set()
    with path.open(encoding=encoding) as f:
        for lineno, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TableError(f"not valid JSON: {exc.msg}", lineno) from exc
            if not isinstance(obj, dict):
                raise TableError("each line must be a JSON object", lineno)
            row = {str(k): _cell(v, lineno, str(k)) for k, v in obj.items()}
            for key in row:
                if key not in seen:
                    seen.add(key)
                    table.columns.append(key)
            table.rows.append(row)
            table.lines.append(lineno)
    if not table.rows:
        raise TableError("the file has no rows", 1)
    for row in table.rows:
        for col in table.columns:
            row.setdefault(col, "")
    return table


def read_table(path: Path, fmt: TableFormat, encoding: str = "utf-8") -> Table:
    """The whole table; raises TableError naming the line (1-based) and column."""
    _check_encoding(path, encoding)
    if fmt == "jsonl":
        return _read_jsonl(path, encoding)
    if fmt in ("csv", "tsv"):
        return _read_delimited(path, fmt, encoding)
    raise TableError(f"unknown format {fmt!r}")
