"""Uploaded data sets: parse strictly, check columns, labels and rows, store, register."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from app.db.models import UploadedDataset
from app.errors import NotFound, Unprocessable
from app.pagination import check_limit, decode_token, encode_token
from app.repositories import uploads as uploads_repo
from app.services.spool import spooled
from app.services.tabular import Table, TableError, TableFormat, read_table
from app.settings import Settings
from app.storage import get_store
from app.tenancy import Caller

MIN_ROWS = 8
MAX_LABELS = 1000
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
    elif "text" in columns:
        texts = ["text"]
    elif "sentence" in columns:
        texts = ["sentence"]
    elif "sentence1" in columns and "sentence2" in columns:
        texts = ["sentence1", "sentence2"]
    else:
        raise _invalid(
            "no text, sentence or sentence1/sentence2 column; give text_columns",
            field="text_columns",
        )  # fmt: skip
    label = (label_column or "label").strip()
    for col, fld in [*((t, "text_columns") for t in texts), (label, "label_column")]:
        if col not in columns:
            raise _invalid(f"no such column; columns: {', '.join(columns)}", line=1,
                           column=col, field=fld)  # fmt: skip
    return texts, label


def check_rows(table: Table, texts: list[str], label: str) -> list[str]:
    for i, row in enumerate(table.rows):
        line = table.lines[i] if i < len(table.lines) else None
        for col in [*texts, label]:
            if not row.get(col, "").strip():
                raise _invalid("empty value", line=line, column=col, field="file")
    if len(table.rows) < MIN_ROWS:
        raise _invalid(f"{len(table.rows)} rows; at least {MIN_ROWS} are needed", field="file")
    labels = sorted({row[label].strip() for row in table.rows})
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
    with spooled(stream, settings.work_dir, settings.max_dataset_upload_bytes) as spool:
        try:
            table = read_table(spool.path, table_fmt)
        except TableError as exc:
            raise _invalid(exc.message, line=exc.line, column=exc.column, field="file") from exc
        texts, label = pick_columns(table.columns, text_columns, label_column)
        labels = check_rows(table, texts, label)
        stored = get_store(settings).put_file(spool.path)
    dataset = UploadedDataset(
        id=uuid.uuid4(), tenant_id=caller.tenant_id,
        name=(name or Path(filename).stem or filename)[:255], filename=filename[:255],
        format=table_fmt, size_bytes=stored.size_bytes, sha256=stored.sha256,
        storage_key=stored.key, columns=table.columns,
        text_columns=texts, label_column=label, labels=labels, num_rows=len(table.rows),
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
