"""What every task's upload check shares, and the checks of the two tasks whose files are not
tables: token classification (CoNLL or tagged JSONL, app.services.conll_format) and question
answering (SQuAD JSON or JSONL, app.services.squad_format). app.services.datasets checks the
tables (sequence classification, regression) and registers every upload.

Memory: these readers hold the whole file as Python objects, about 6 times the file on the
shared data (24 MB for SQuAD's 3.8 MB train file, 19 MB for CoNLL-2003's 3.3 MB) and up to
about 16 times for hostile shapes (measured: a CoNLL file of two-letter tokens, 8 MB -> 129 MB
and 1.5 CPU-s; a SQuAD file of one-letter questions, 18 MB -> 243 MB and 1.7 CPU-s). So their
uploads are capped at the max_whole_file_dataset_bytes setting, 16 MiB by default
(max_dataset_upload_bytes, 512 MiB by default, caps the streamed tables), which bounds a check
at about 260 MB and 3 CPU-seconds: the full SQuAD v1.1 train set (30.3 MB) is over it (raise
the setting for it); the shared data's files are well under."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.catalog import TaskName
from app.errors import Unprocessable
from app.services.conll_format import (
    DOCSTART,
    TagFormat,
    TagFormatError,
    TagScheme,
    check_scheme,
    detect_scheme,
    read_tagged,
    tag_names,
)
from app.services.squad_format import QAFormat, QAFormatError, read_squad

SchemeField = Literal["auto", "IOB1", "IOB2"]  # the upload's tag_scheme field (auto: detect)
MIN_ROWS = 8  # examples: rows, sentences or questions
MAX_LABELS = 1000  # classes, or tags (token classification)
MAX_QA_LINE_BYTES = 4 * 1024**2  # one JSONL question with its context
# Each task's formats, and the format a file name's suffix means for it.
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
                  ".ndjson": "jsonl"}  # fmt: skip
SUFFIXES: dict[TaskName, dict[str, str]] = {
    "sequence_classification": TABLE_SUFFIXES,
    "regression": TABLE_SUFFIXES,
    "token_classification": {
        ".conll": "conll",
        ".txt": "conll",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
    },
    "question_answering": {".json": "squad", ".jsonl": "jsonl", ".ndjson": "jsonl"},
}
# The optional form fields each task's upload takes (name and format go with every task).
FORM_FIELDS: dict[TaskName, tuple[str, ...]] = {
    "sequence_classification": ("text_columns", "label_column"),
    "regression": ("text_columns", "label_column"),
    "token_classification": ("tag_column", "tag_scheme"),
    "question_answering": (),
}
QA_ANSWERS = "answers"  # what a question-answering upload records as its label column


@dataclass(frozen=True)
class Checked:
    """What an upload's checks found: the fields of its UploadedDataset row (which says what
    each holds for each task)."""

    format: str
    columns: list[str]
    text_columns: list[str]
    label_column: str
    labels: list[str]
    num_rows: int
    options: dict[str, Any] = field(default_factory=dict)


def invalid(
    message: str, *, line: int | None = None, column: str | None = None,
    field: str | None = None, path: str | None = None,
) -> Unprocessable:  # fmt: skip
    """A 422 invalid_dataset naming where: the line and the column (a table) or the path of
    the value inside the line's or the document's JSON (`path`, shown in `errors` as
    `field`); `field` is the form field at fault (`file` for the content)."""
    where = ", ".join(p for p in (f"line {line}" if line else "",
                                  f"column {column!r}" if column else "",
                                  f"field {path}" if path else "") if p)  # fmt: skip
    error: dict[str, Any] = {"line": line, "column": column, "msg": message}
    if path is not None:
        error = {"line": line, "field": path, "msg": message}
    return Unprocessable(
        f"{where}: {message}" if where else message, code="invalid_dataset", field=field,
        errors=[error],
    )  # fmt: skip


def detect_format(task: TaskName, filename: str, fmt: str | None) -> str:
    """The format given (one of the task's), else the one the file name's suffix means."""
    formats = list(dict.fromkeys(SUFFIXES[task].values()))
    shown = ", ".join(formats[:-1]) + f" or {formats[-1]}"
    if fmt:
        if fmt not in formats:
            raise invalid(f"format must be {shown} for a {task} data set, not {fmt!r}",
                          field="format")  # fmt: skip
        return fmt
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES[task]:
        names = ", ".join(SUFFIXES[task])
        raise invalid(
            f"cannot tell the format from the file name; name it {names} or give the format "
            f"field ({shown})", field="format",
        )  # fmt: skip
    return SUFFIXES[task][suffix]


def check_form_fields(task: TaskName, given: dict[str, str | None]) -> None:
    """A form field another task's upload takes is refused rather than ignored."""
    for name, value in given.items():
        if value is not None and name not in FORM_FIELDS[task]:
            takes = ", ".join(FORM_FIELDS[task]) or "none of them"
            raise Unprocessable(
                f"{name} is not a field of a {task} upload (it takes {takes})",
                code="invalid_option", field=name,
            )  # fmt: skip


def upload_limit(task: TaskName, max_upload_bytes: int, max_whole_file_bytes: int) -> int:
    """The byte cap of this task's uploads (see the module docstring)."""
    if task in ("token_classification", "question_answering"):
        return min(max_upload_bytes, max_whole_file_bytes)
    return max_upload_bytes


def _enough(found: int, what: str) -> None:
    if found < MIN_ROWS:
        raise invalid(f"{found} {what}; at least {MIN_ROWS} are needed", field="file")


def _conll_width(path: Path) -> int:
    """The columns of the first token line (read_tagged has checked that all agree)."""
    with path.open("rb") as f:
        for raw in f:
            cols = raw.split()
            if cols and cols[0] != DOCSTART.encode():
                return len(cols)
    raise invalid("no sentences", field="file")  # read_tagged refused such a file first


def check_tagged(
    path: Path, fmt: TagFormat, tag_column: str | None, tag_scheme: SchemeField | None
) -> Checked:
    """A token-classification file: every tag `O`, `B-X` or `I-X`, the scheme (given, or
    detected under `auto`) holding, at least MIN_ROWS sentences and one entity type. Records
    the IOB2 tags (the model's labels), the tag field or column (a CoNLL file's 1-based
    number, so that the worker reads the same column) and the file's scheme."""
    try:
        sentences = read_tagged(path, fmt, tag_column=tag_column)
        scheme: TagScheme = (
            detect_scheme(sentences) if tag_scheme is None or tag_scheme == "auto" else tag_scheme
        )
        check_scheme(sentences, scheme)
    except TagFormatError as exc:
        at_form = exc.field == "tag_column"
        raise invalid(
            exc.message, line=exc.line, path=None if at_form else exc.field,
            field="tag_column" if at_form else "file",
        ) from exc  # fmt: skip
    _enough(len(sentences), "sentences")
    names = tag_names(sentences)
    if len(names) < 3:
        raise invalid("every tag is O: at least one entity type is needed", field="file")
    if len(names) > MAX_LABELS:
        raise invalid(f"{len(names)} tags; at most {MAX_LABELS} are allowed", field="file")
    column = tag_column or ("tags" if fmt == "jsonl" else str(_conll_width(path)))
    return Checked(fmt, [], [], column, names, len(sentences), {"tag_scheme": scheme})


def check_questions(path: Path, fmt: QAFormat) -> Checked:
    """A question-answering file: every question with an id, a context and answers that are
    exactly the context at their offsets (app.services.squad_format), at least MIN_ROWS."""
    try:
        questions = read_squad(path, fmt, max_bytes_per_line=MAX_QA_LINE_BYTES)
    except QAFormatError as exc:
        raise invalid(exc.message, line=exc.line, path=exc.field, field="file") from exc
    _enough(len(questions), "questions")
    return Checked(fmt, [], [], QA_ANSWERS, [], len(questions))
