"""Uploaded data sets: parse strictly, check columns, labels and rows, store, register.

An upload is checked in one streaming pass (`scan`) that keeps only what the checks need, so
its cost is linear in the file and its memory bounded by the columns and labels."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from app.db.models import UploadedDataset
from app.errors import NotFound, Unprocessable
from app.pagination import check_limit, decode_token, encode_token
from app.repositories import uploads as uploads_repo
from app.services.labels import LabelError, normalize_labels
from app.services.spool import spooled
from app.services.tabular import TableError, TableFormat, TableReader
from app.settings import Settings
from app.stores import get_store
from app.tenancy import Caller

MIN_ROWS = 8
MAX_LABELS = 1000
MAX_LABEL_VALUES = 4 * MAX_LABELS  # distinct spellings kept while scanning (1 and 1.0 are two)
MAX_LABEL_CHARS = 1000  # a longer "label" is a text column named as the label
# The text columns taken when the upload names none: the first choice whose columns are all
# there. Both `pick_columns` (the choice) and `candidate_columns` (what `scan` checks for
# empty values) read this one list, so the column chosen is always a column scanned.
DEFAULT_TEXT_COLUMNS: tuple[tuple[str, ...], ...] = (("text",), ("sentence",),
                                                     ("sentence1", "sentence2"))  # fmt: skip
SUFFIXES: dict[str, TableFormat] = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
}  # fmt: skip


def _invalid(message: str, *, line: int | None = None, column: str | None = None,
             field: str | None = None) -> Unprocessable:  # fmt: skip
    where = ", ".join(p for p in (f"line {line}" if line else "",
                                  f"column {column!r}" if column else "") if p)  # fmt: skip
    return Unprocessable(
        f"{where}: {message}" if where else message, code="invalid_dataset", field=field,
        errors=[{"line": line, "column": column, "msg": message}],
    )  # fmt: skip


def detect_format(filename: str, fmt: str | None) -> TableFormat:
    if fmt:
        if fmt not in ("csv", "tsv", "jsonl"):
            raise _invalid(f"format must be csv, tsv or jsonl, not {fmt!r}", field="format")
        return fmt  # type: ignore[return-value]
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise _invalid(
            "cannot tell the format from the file name; name it .csv, .tsv or .jsonl or "
            "give the format field", field="format",
        )  # fmt: skip
    return SUFFIXES[suffix]


def pick_columns(
    columns: list[str], text_columns: str | None, label_column: str | None
) -> tuple[list[str], str]:
    if text_columns:
        texts = [c.strip() for c in text_columns.split(",") if c.strip()]
        if not 1 <= len(texts) <= 2:
            raise _invalid("give one or two text columns", field="text_columns")
    else:
        texts = next((list(d) for d in DEFAULT_TEXT_COLUMNS if set(d) <= set(columns)), [])
        if not texts:
            shown = ", ".join("/".join(d) for d in DEFAULT_TEXT_COLUMNS)
            raise _invalid(f"no {shown} column; give text_columns", field="text_columns")
    label = (label_column or "label").strip()
    for col, fld in [*((t, "text_columns") for t in texts), (label, "label_column")]:
        if col not in columns:
            raise _invalid(f"no such column; columns: {', '.join(columns)}", line=1,
                           column=col, field=fld)  # fmt: skip
    return texts, label


@dataclass
class Scan:
    """What checking an upload needs, gathered in one pass without keeping its rows: memory
    is bounded by the columns and the distinct labels, not by the file."""

    columns: list[str]
    rows: int = 0
    # Each column that may be a text or the label column -> the first line where it is empty.
    first_empty: dict[str, int] = field(default_factory=dict)
    # Each distinct label value (stripped) -> the first line that has it.
    labels: dict[str, int] = field(default_factory=dict)
    label_fault: tuple[str, int] | None = None  # (message, line)


def candidate_columns(text_columns: str | None, label_column: str | None) -> list[str]:
    """Every column `pick_columns` may choose, so that one pass can check them all."""
    if text_columns:
        texts = [c.strip() for c in text_columns.split(",") if c.strip()]
    else:
        texts = list(dict.fromkeys(c for d in DEFAULT_TEXT_COLUMNS for c in d))
    return [*texts, (label_column or "label").strip()]


def scan(path: Path, fmt: TableFormat, max_columns: int, wanted: list[str]) -> Scan:
    """The label column is the last of `wanted`; raises TableError at the first fault."""
    reader = TableReader(path, fmt, max_columns=max_columns, keep=wanted)
    out = Scan(columns=reader.columns)
    label = wanted[-1]
    for line, row in reader:
        out.rows += 1
        for col in wanted:
            if col not in out.first_empty and not row[col].strip():
                out.first_empty[col] = line
        value = row[label].strip()
        if not value or value in out.labels or out.label_fault:
            continue
        if len(value) > MAX_LABEL_CHARS:
            out.label_fault = (f"a label longer than {MAX_LABEL_CHARS} characters", line)
        elif len(out.labels) >= MAX_LABEL_VALUES:
            out.label_fault = (f"more than {MAX_LABEL_VALUES} distinct label values", line)
        else:
            out.labels[value] = line
    return out


def check_rows(found: Scan, texts: list[str], label: str) -> list[str]:
    """The class names (see app.services.labels); the first empty value, in file order,
    is refused naming its line and column."""
    empty = [(found.first_empty[c], i, c) for i, c in enumerate([*texts, label])
             if c in found.first_empty]  # fmt: skip
    if empty:
        line, _, col = min(empty)
        raise _invalid("empty value", line=line, column=col, field="file")
    if found.rows < MIN_ROWS:
        raise _invalid(f"{found.rows} rows; at least {MIN_ROWS} are needed", field="file")
    if found.label_fault:
        message, line = found.label_fault
        raise _invalid(message, line=line, column=label, field="file")
    try:
        labels = normalize_labels(found.labels).names
    except LabelError as exc:
        at = max((found.labels[v] for v in exc.values if v in found.labels), default=None)
        raise _invalid(exc.message, line=at, column=label, field="file") from exc
    if len(labels) < 2:
        raise _invalid("at least 2 distinct labels are needed", column=label, field="file")
    if len(labels) > MAX_LABELS:
        raise _invalid(f"more than {MAX_LABELS} distinct labels", column=label, field="file")
    return labels


def upload(
    session: Session, settings: Settings, stream: BinaryIO, filename: str, *,
    name: str | None, fmt: str | None, text_columns: str | None, label_column: str | None,
    caller: Caller,
) -> UploadedDataset:  # fmt: skip
    """The data set belongs to the caller's tenant."""
    table_fmt = detect_format(filename, fmt)
    wanted = candidate_columns(text_columns, label_column)
    with spooled(stream, settings.work_dir, settings.max_dataset_upload_bytes) as spool:
        try:
            found = scan(spool.path, table_fmt, settings.max_dataset_columns, wanted)
        except TableError as exc:
            raise _invalid(exc.message, line=exc.line, column=exc.column, field="file") from exc
        texts, label = pick_columns(found.columns, text_columns, label_column)
        labels = check_rows(found, texts, label)
        stored = get_store(settings).put_file(spool.path)
    dataset = UploadedDataset(
        id=uuid.uuid4(), tenant_id=caller.tenant_id,
        name=(name or Path(filename).stem or filename)[:255], filename=filename[:255],
        format=table_fmt, size_bytes=stored.size_bytes, sha256=stored.sha256,
        storage_key=stored.key, columns=found.columns,
        text_columns=texts, label_column=label, labels=labels, num_rows=found.rows,
    )  # fmt: skip
    return uploads_repo.add_dataset(session, dataset)


def get(session: Session, raw_id: str, caller: Caller) -> UploadedDataset:
    try:
        dataset = uploads_repo.get_dataset(session, uuid.UUID(raw_id), tenant_id=caller.scope)
    except ValueError:
        dataset = None
    if dataset is None:
        raise NotFound(f"no data set {raw_id!r}", code="dataset_not_found")
    return dataset


def list_datasets(
    session: Session, settings: Settings, caller: Caller, limit: int | None,
    page_token: str | None,
) -> tuple[list[UploadedDataset], str | None]:  # fmt: skip
    items, nxt = uploads_repo.list_datasets(
        session, decode_token(page_token), check_limit(limit, settings), tenant_id=caller.scope
    )
    return items, encode_token(nxt) if nxt else None
