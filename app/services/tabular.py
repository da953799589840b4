"""Read CSV, TSV and JSONL tables strictly; errors name the line and column.

The cost is linear in the file: rows are kept compactly (a JSONL row holds only its own keys,
and a column it lacks reads as empty), the header or the union of JSONL keys is bounded by
`max_columns` as it is read, and each JSONL line goes through the bounded JSON parser
(`app.services.json_input`). `TableReader` streams the rows (the API checks an upload
without holding it); the worker imports `read_table` to read uploaded data sets whole.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.services import json_input

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


class Row(dict[str, str]):
    """The cells a row has; a column it lacks reads as empty (`row[c]`, and `row.get(c)` is
    None), so no row is ever padded with every column seen."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass
class Table:
    columns: list[str]
    rows: list[Row]
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


def _too_many(what: str, max_columns: int, line: int) -> TableError:
    return TableError(f"{what}; at most {max_columns} columns are allowed", line)


def _check_header(columns: list[str], max_columns: int | None) -> list[str]:
    if max_columns is not None and len(columns) > max_columns:
        raise _too_many(f"{len(columns)} columns in the header", max_columns, 1)
    columns = [c.strip() for c in columns]
    if columns:
        columns[0] = columns[0].removeprefix("\ufeff").strip()  # a UTF-8 byte-order mark
    if not columns or all(not c for c in columns):
        raise TableError("no header row", 1)
    seen: set[str] = set()
    for c in columns:
        if not c:
            raise TableError("empty column name in the header", 1)
        if c in seen:
            raise TableError(f"duplicate column {c!r} in the header", 1)
        seen.add(c)
    return columns


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _text(value: object) -> str:
    """A checked cell (see _check_cells) as text."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


def _check_cells(obj: dict[str, object], line: int) -> None:
    """Values are strings, numbers, booleans or null; the common case costs C-speed passes
    (the types of the values, and two lookups for an infinite float), not a Python loop."""
    types = set(map(type, obj.values()))
    if not types <= _SCALARS:
        column = next(k for k, v in obj.items() if type(v) not in _SCALARS)
        raise TableError("values must be strings or numbers", line, column)
    if float in types and (math.inf in obj.values() or -math.inf in obj.values()):
        column = next(k for k, v in obj.items() if type(v) is float and not math.isfinite(v))
        raise TableError("a number too large for a float", line, column)


_JSON_POSITION = re.compile(r"\(line 1, column (\d+)\)")


def _json_object(text: str, line: int) -> dict[str, object]:
    try:
        obj = json_input.loads(text)
    except json_input.JsonInputError as exc:
        # A JSONL line is one line of JSON: its position is a character, not a line.
        raise TableError(_JSON_POSITION.sub(r"(at character \1)", exc.message), line) from exc
    if not isinstance(obj, dict):
        raise TableError("each line must be a JSON object", line)
    return obj


class TableReader:
    """Iterating yields (line, row) and raises TableError at the first fault. `columns` is the
    header (CSV, TSV) or the keys seen so far in first-seen order (JSONL), one list filled in
    place: complete once the iteration has ended. More than `max_columns` columns is refused
    at the line that adds them, before that line's row is built. With `keep`, rows hold only
    those columns, so a caller that checks a few columns holds no more than it needs."""

    def __init__(
        self, path: Path, fmt: TableFormat, encoding: str = "utf-8",
        max_columns: int | None = None, keep: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        if fmt not in ("csv", "tsv", "jsonl"):
            raise TableError(f"unknown format {fmt!r}")
        self.path, self.fmt, self.encoding, self.max_columns = path, fmt, encoding, max_columns
        # Rows hold only these columns (every cell is still checked); None: all.
        self.keep = list(dict.fromkeys(keep)) if keep is not None else None
        self.columns: list[str] = []

    def __iter__(self) -> Iterator[tuple[int, Row]]:
        _check_encoding(self.path, self.encoding)
        if self.fmt == "jsonl":
            return self._jsonl()
        return self._delimited()

    def _delimited(self) -> Iterator[tuple[int, Row]]:
        kwargs: dict[str, object] = {"delimiter": ","}
        if self.fmt == "tsv":
            kwargs = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
        with self.path.open(encoding=self.encoding, newline="") as f:
            reader = csv.reader(f, **kwargs)  # type: ignore[arg-type]
            try:
                header = next(reader, None)
                if header is None:
                    raise TableError("the file is empty", 1)
                self.columns[:] = columns = _check_header(header, self.max_columns)
                keep = self.keep or []
                kept = [(c, i) for i, c in enumerate(columns) if c in keep]
                for record in reader:
                    if not record or record == [""]:
                        continue
                    if len(record) != len(columns):
                        raise TableError(
                            f"{len(record)} fields, the header has {len(columns)}",
                            reader.line_num,
                        )  # fmt: skip
                    if sum(map(len, record)) > MAX_ROW_CHARS:
                        raise TableError(
                            f"row longer than {MAX_ROW_CHARS} characters", reader.line_num
                        )
                    if self.keep is None:
                        yield reader.line_num, Row(zip(columns, record, strict=True))
                    else:
                        yield reader.line_num, Row((c, record[i]) for c, i in kept)
            except csv.Error as exc:
                message = f"malformed {self.fmt.upper()}: {exc}"
                if "field larger than field limit" in str(exc):  # csv's own bound (131072)
                    message = f"row longer than {MAX_ROW_CHARS} characters"
                raise TableError(message, reader.line_num) from exc

    def _jsonl(self) -> Iterator[tuple[int, Row]]:
        seen: dict[str, str] = {}  # each key once: rows share the first-seen key strings
        rows = 0
        with self.path.open(encoding=self.encoding) as f:
            for lineno, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                obj = _json_object(text, lineno)
                new = obj.keys() - seen.keys()
                if new:
                    count = len(seen) + len(new)
                    if self.max_columns is not None and count > self.max_columns:
                        what = f"this line brings the columns (distinct keys) to {count}"
                        raise _too_many(what, self.max_columns, lineno)
                    ordered = [k for k in obj if k in new]
                    seen.update(zip(ordered, ordered, strict=True))
                    self.columns.extend(ordered)
                _check_cells(obj, lineno)
                rows += 1
                if self.keep is None:
                    yield lineno, Row((seen[k], _text(v)) for k, v in obj.items())
                else:
                    yield lineno, Row((k, _text(obj[k])) for k in self.keep if k in obj)
        if not rows:
            raise TableError("the file has no rows", 1)


def read_table(
    path: Path, fmt: TableFormat, encoding: str = "utf-8", max_columns: int | None = None
) -> Table:
    """The whole table; raises TableError naming the line (1-based) and column."""
    reader = TableReader(path, fmt, encoding, max_columns)
    table = Table(columns=reader.columns, rows=[])
    for line, row in reader:
        table.rows.append(row)
        table.lines.append(line)
    return table
