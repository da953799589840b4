"""Uploaded data sets: parse strictly, check columns, labels and rows, store, register.

Each upload serves one task (the form's `task`, sequence_classification by default) and is
checked by that task's rules; a refusal stores nothing. Tables (sequence classification,
regression) are checked here in one streaming pass (`scan`, `scan_scores`) that keeps only
what the checks need, so its cost is linear in the file and its memory bounded by the
columns and labels; token classification and question answering files are read whole by
app.services.task_uploads, under a lower byte cap."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from sqlalchemy.orm import Session

from app.catalog import DEFAULT_TASK, TaskName
from app.db.models import UploadedDataset
from app.errors import NotFound, PayloadTooLarge
from app.pagination import check_limit, decode_token, encode_token
from app.repositories import uploads as uploads_repo
from app.services.conll_format import TagFormat
from app.services.labels import LabelError, normalize_labels
from app.services.scores import ScoreError, parse_score
from app.services.spool import spooled
from app.services.squad_format import QAFormat
from app.services.tabular import TableError, TableFormat, TableReader
from app.services.task_uploads import (
    MAX_LABELS,
    MIN_ROWS,
    Checked,
    SchemeField,
    check_form_fields,
    check_questions,
    check_tagged,
    detect_format,
    invalid,
    upload_limit,
)
from app.settings import Settings
from app.stores import get_store
from app.tenancy import Caller

MAX_LABEL_VALUES = 4 * MAX_LABELS  # distinct spellings kept while scanning (1 and 1.0 are two)
MAX_LABEL_CHARS = 1000  # a longer "label" is a text column named as the label
# The text columns taken when the upload names none: the first choice whose columns are all
# there. Both `pick_columns` (the choice) and `candidate_columns` (what `scan` checks for
# empty values) read this one list, so the column chosen is always a column scanned.
DEFAULT_TEXT_COLUMNS: tuple[tuple[str, ...], ...] = (("text",), ("sentence",),
                                                     ("sentence1", "sentence2"))  # fmt: skip
# The score column of a regression upload that names none: the first that is there.
DEFAULT_SCORE_COLUMNS = ("score", "label")


def pick_columns(
    columns: list[str], text_columns: str | None, label_column: str | None
) -> tuple[list[str], str]:
    if text_columns:
        texts = [c.strip() for c in text_columns.split(",") if c.strip()]
        if not 1 <= len(texts) <= 2:
            raise invalid("give one or two text columns", field="text_columns")
    else:
        texts = next((list(d) for d in DEFAULT_TEXT_COLUMNS if set(d) <= set(columns)), [])
        if not texts:
            shown = ", ".join("/".join(d) for d in DEFAULT_TEXT_COLUMNS)
            raise invalid(f"no {shown} column; give text_columns", field="text_columns")
    label = (label_column or "label").strip()
    for col, fld in [*((t, "text_columns") for t in texts), (label, "label_column")]:
        if col not in columns:
            raise invalid(f"no such column; columns: {', '.join(columns)}", line=1,
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


def candidate_texts(text_columns: str | None) -> list[str]:
    """Every text column `pick_columns` may choose."""
    if text_columns:
        return [c.strip() for c in text_columns.split(",") if c.strip()]
    return list(dict.fromkeys(c for d in DEFAULT_TEXT_COLUMNS for c in d))


def candidate_columns(text_columns: str | None, label_column: str | None) -> list[str]:
    """Every column `pick_columns` may choose, so that one pass can check them all."""
    return [*candidate_texts(text_columns), (label_column or "label").strip()]


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
        raise invalid("empty value", line=line, column=col, field="file")
    if found.rows < MIN_ROWS:
        raise invalid(f"{found.rows} rows; at least {MIN_ROWS} are needed", field="file")
    if found.label_fault:
        message, line = found.label_fault
        raise invalid(message, line=line, column=label, field="file")
    try:
        labels = normalize_labels(found.labels).names
    except LabelError as exc:
        at = max((found.labels[v] for v in exc.values if v in found.labels), default=None)
        raise invalid(exc.message, line=at, column=label, field="file") from exc
    if len(labels) < 2:
        raise invalid("at least 2 distinct labels are needed", column=label, field="file")
    if len(labels) > MAX_LABELS:
        raise invalid(f"more than {MAX_LABELS} distinct labels", column=label, field="file")
    return labels


def check_label_table(
    path: Path, fmt: TableFormat, max_columns: int, text_columns: str | None,
    label_column: str | None,
) -> Checked:  # fmt: skip
    """A sequence-classification table: text column(s) and a label column of 2 or more
    classes, no empty value, at least MIN_ROWS rows."""
    wanted = candidate_columns(text_columns, label_column)
    try:
        found = scan(path, fmt, max_columns, wanted)
    except TableError as exc:
        raise invalid(exc.message, line=exc.line, column=exc.column, field="file") from exc
    texts, label = pick_columns(found.columns, text_columns, label_column)
    labels = check_rows(found, texts, label)
    return Checked(fmt, found.columns, texts, label, labels, found.rows)


@dataclass
class ScoreScan:
    """What checking a regression table needs, gathered in one pass without its rows."""

    columns: list[str]
    rows: int = 0
    # Each column that may be a text column -> the first line where it is empty.
    first_empty: dict[str, int] = field(default_factory=dict)
    # Each column that may be the score column -> its first value that is no score
    # (app.services.scores: the message and the line), and its lowest and highest score.
    faults: dict[str, tuple[str, int]] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)


def scan_scores(
    path: Path, fmt: TableFormat, max_columns: int, texts: list[str], scores: list[str]
) -> ScoreScan:
    """Every value of the `scores` columns parsed as a score; raises TableError at the
    first fault of the table itself."""
    reader = TableReader(path, fmt, max_columns=max_columns, keep=[*texts, *scores])
    out = ScoreScan(columns=reader.columns)
    for line, row in reader:
        out.rows += 1
        for col in texts:
            if col not in out.first_empty and not row[col].strip():
                out.first_empty[col] = line
        for col in scores:
            if col in out.faults:
                continue
            try:
                value = parse_score(row[col])
            except ScoreError as exc:
                out.faults[col] = (exc.message, line)
                continue
            low, high = out.bounds.get(col, (value, value))
            out.bounds[col] = (min(low, value), max(high, value))
    return out


def check_score_table(
    path: Path, fmt: TableFormat, max_columns: int, text_columns: str | None,
    label_column: str | None,
) -> Checked:  # fmt: skip
    """A regression table: text column(s) and a score column (`label_column`, else `score`,
    else `label`) whose every value is a score (app.services.scores), not all the same; no
    empty text; at least MIN_ROWS rows. Records the lowest and highest score."""
    scores = [label_column.strip()] if label_column else list(DEFAULT_SCORE_COLUMNS)
    try:
        found = scan_scores(path, fmt, max_columns, candidate_texts(text_columns), scores)
    except TableError as exc:
        raise invalid(exc.message, line=exc.line, column=exc.column, field="file") from exc
    score = next((c for c in scores if c in found.columns), scores[-1])
    texts, _ = pick_columns(found.columns, text_columns, score)
    faults = [(found.first_empty[c], i, c, "empty value") for i, c in enumerate(texts)
              if c in found.first_empty]  # fmt: skip
    if score in found.faults:
        message, line = found.faults[score]
        faults.append((line, len(texts), score, message))
    if faults:
        line, _, col, message = min(faults)
        raise invalid(message, line=line, column=col, field="file")
    if found.rows < MIN_ROWS:
        raise invalid(f"{found.rows} rows; at least {MIN_ROWS} are needed", field="file")
    low, high = found.bounds[score]
    if low == high:
        raise invalid(f"every score is {low:g}: at least 2 different scores are needed",
                      column=score, field="file")  # fmt: skip
    options = {"score_min": low, "score_max": high}
    return Checked(fmt, found.columns, texts, score, [], found.rows, options)


def check_file(
    task: TaskName, path: Path, fmt: str, settings: Settings, *, text_columns: str | None,
    label_column: str | None, tag_column: str | None, tag_scheme: SchemeField | None,
) -> Checked:  # fmt: skip
    """The task's checks of a spooled upload in `fmt` (one of the task's formats)."""
    if task == "token_classification":
        return check_tagged(path, cast("TagFormat", fmt), tag_column, tag_scheme)
    if task == "question_answering":
        return check_questions(path, cast("QAFormat", fmt))
    table = cast("TableFormat", fmt)
    check = check_score_table if task == "regression" else check_label_table
    return check(path, table, settings.max_dataset_columns, text_columns, label_column)


def upload(
    session: Session, settings: Settings, stream: BinaryIO, filename: str, *,
    name: str | None, fmt: str | None, text_columns: str | None, label_column: str | None,
    caller: Caller, task: TaskName = DEFAULT_TASK, tag_column: str | None = None,
    tag_scheme: SchemeField | None = None,
) -> UploadedDataset:  # fmt: skip
    """The data set belongs to the caller's tenant and serves `task`."""
    check_form_fields(task, {"text_columns": text_columns, "label_column": label_column,
                             "tag_column": tag_column, "tag_scheme": tag_scheme})  # fmt: skip
    data_fmt = detect_format(task, filename, fmt)
    limit = upload_limit(
        task, settings.max_dataset_upload_bytes, settings.max_whole_file_dataset_bytes
    )
    try:
        with spooled(stream, settings.work_dir, limit) as spool:
            checked = check_file(
                task, spool.path, data_fmt, settings, text_columns=text_columns,
                label_column=label_column, tag_column=tag_column, tag_scheme=tag_scheme,
            )  # fmt: skip
            stored = get_store(settings).put_file(spool.path)
    except PayloadTooLarge as exc:
        if limit == settings.max_dataset_upload_bytes:
            raise
        raise PayloadTooLarge(
            f"upload larger than {limit} bytes: a {task} file is read whole to check it, "
            "so its uploads are capped lower than tables", field="file",
        ) from exc  # fmt: skip
    dataset = UploadedDataset(
        id=uuid.uuid4(), tenant_id=caller.tenant_id, task=task,
        name=(name or Path(filename).stem or filename)[:255], filename=filename[:255],
        format=checked.format, size_bytes=stored.size_bytes, sha256=stored.sha256,
        storage_key=stored.key, columns=checked.columns, text_columns=checked.text_columns,
        label_column=checked.label_column, labels=checked.labels, num_rows=checked.num_rows,
        options=checked.options,
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
