"""Read and validate extractive question-answering data (SQuAD v1.1 style), strictly.

Two formats: "squad", the official SQuAD JSON document (`{"data": [{"title", "paragraphs":
[{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}`), and
"jsonl", one `{"id", "question", "context", "answers": {"text": [...], "answer_start":
[...]}}` object per line (the Hugging Face `squad` layout). Other keys are ignored.

The first fault raises QAFormatError naming the field as a path (`data[0].paragraphs[3].qas[1]
.answers[0].answer_start`; in JSONL, within the line's object: `answers.answer_start[0]`) and
the line: the JSONL line, or the line where the offending SQuAD object starts. That line is
found only once a fault is known, by walking the text along the field's path with the C
decoder skipping each sibling, so a valid file costs one bounded parse
(`app.services.json_input`) and one pass over its questions.

Each question needs a non-empty id (unique in the file), question and context, and at least one
answer; each answer must be exactly `context[answer_start:answer_start + len(text)]` (offsets
in characters), the check that catches a file whose offsets are off. Torch-free: the upload API
validates with it and the worker reads with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from app.services import json_input

QAFormat = Literal["squad", "jsonl"]
Step = str | int  # a key of an object or an index of a list
FieldPath = tuple[Step, ...]

_JSON_LINE = re.compile(r"\(line (\d+), column (\d+)\)")
_KINDS = {str: "a string", list: "a list", dict: "an object", int: "an integer"}
_SHOWN = 40  # characters of a text quoted in a message


@dataclass(frozen=True)
class QAExample:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]  # character offsets into `context`, one per answer


class QAFormatError(ValueError):
    def __init__(self, message: str, line: int | None = None, field: str | None = None) -> None:
        where = ", ".join(
            p for p in (f"line {line}" if line else "", f"field {field}" if field else "") if p
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.line = line
        self.field = field


class _Fault(Exception):
    """A fault at `path` (relative to the document or to the JSONL line's object)."""

    def __init__(self, message: str, path: FieldPath) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def field_path(path: Sequence[Step]) -> str:
    """("data", 0, "paragraphs", 3) -> "data[0].paragraphs[3]"."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


# --- values ---------------------------------------------------------------------------------


def _dict(value: Any, path: FieldPath) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Fault("must be an object", path)
    return value


def _field(obj: dict[str, Any], key: str, kind: type, path: FieldPath) -> Any:
    """obj[key], which must be present and of exactly `kind` (a bool is no int)."""
    if key not in obj:
        raise _Fault("is missing", (*path, key))
    value = obj[key]
    if type(value) is not kind:
        raise _Fault(f"must be {_KINDS[kind]}", (*path, key))
    return value


def _text(obj: dict[str, Any], key: str, path: FieldPath) -> str:
    value: str = _field(obj, key, str, path)
    if not value.strip():
        raise _Fault("is empty", (*path, key))
    return value


def _check_answer(
    context: str, text: Any, start: Any, text_at: FieldPath, start_at: FieldPath
) -> None:
    """The key check: `text` is the context at `start`."""
    if type(text) is not str:
        raise _Fault("must be a string", text_at)
    if not text:
        raise _Fault("is empty", text_at)
    if type(start) is not int:
        raise _Fault("must be an integer", start_at)
    if start < 0:
        raise _Fault(f"must not be negative (got {start})", start_at)
    if start + len(text) > len(context):
        raise _Fault(
            f"{start} + the answer's {len(text)} characters runs past the end of the context "
            f"({len(context)} characters)",
            start_at,
        )
    found = context[start : start + len(text)]
    if found != text:
        raise _Fault(
            f"the answer {_shown(text)} is not the context at {start}, which reads {_shown(found)}",
            start_at,
        )


class _Ids:
    """Each id once in the file; remembers where (a path or a line) each was first seen."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def add(self, qid: str, where: str, path: FieldPath) -> None:
        if qid in self._seen:
            raise _Fault(f"duplicate id {_shown(qid)} (first at {self._seen[qid]})", path)
        self._seen[qid] = where


# --- SQuAD JSON -----------------------------------------------------------------------------


def _squad_answers(
    context: str, answers: list[Any], path: FieldPath
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    texts: list[str] = []
    starts: list[int] = []
    for k, raw in enumerate(answers):
        at = (*path, k)
        answer = _dict(raw, at)
        for key in ("text", "answer_start"):
            if key not in answer:
                raise _Fault("is missing", (*at, key))
        text, start = answer["text"], answer["answer_start"]
        _check_answer(context, text, start, (*at, "text"), (*at, "answer_start"))
        texts.append(text)
        starts.append(start)
    return tuple(texts), tuple(starts)


def _squad_question(raw: Any, context: str, ids: _Ids, path: FieldPath) -> QAExample:
    qa = _dict(raw, path)
    qid = _text(qa, "id", path)
    ids.add(qid, field_path(path), (*path, "id"))
    question = _text(qa, "question", path)
    answers: list[Any] = _field(qa, "answers", list, path)
    if not answers:
        v2 = qa.get("is_impossible") is True
        why = " (unanswerable SQuAD v2.0 questions are not supported)" if v2 else ""
        raise _Fault(f"needs at least one answer{why}", (*path, "answers"))
    texts, starts = _squad_answers(context, answers, (*path, "answers"))
    return QAExample(qid, question, context, texts, starts)


def _squad_paragraph(raw: Any, ids: _Ids, path: FieldPath) -> Iterator[QAExample]:
    paragraph = _dict(raw, path)
    context = _text(paragraph, "context", path)
    qas: list[Any] = _field(paragraph, "qas", list, path)
    for q, qa in enumerate(qas):
        yield _squad_question(qa, context, ids, (*path, "qas", q))


def _squad_examples(doc: Any) -> list[QAExample]:
    root = _dict(doc, ())
    data: list[Any] = _field(root, "data", list, ())
    ids = _Ids()
    out: list[QAExample] = []
    for a, raw in enumerate(data):
        article = _dict(raw, ("data", a))
        if "title" in article and type(article["title"]) is not str:
            raise _Fault("must be a string", ("data", a, "title"))
        paragraphs: list[Any] = _field(article, "paragraphs", list, ("data", a))
        for p, paragraph in enumerate(paragraphs):
            out.extend(_squad_paragraph(paragraph, ids, ("data", a, "paragraphs", p)))
    if not out:
        raise _Fault("holds no questions", ("data",))
    return out


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def value_offset(text: str, path: Sequence[Step]) -> int:
    """Where the value at `path` starts in `text`, a valid JSON document: each sibling before
    the path's step is skipped by the C decoder (`raw_decode`), so the cost is at most one
    parse of the text before that value, at C speed. (Of a key given twice, json.loads keeps
    the last; this finds the first.)"""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    for step in path:
        pos = _skip_ws(text, pos + 1)  # past "[" or "{"
        if isinstance(step, int):
            for _ in range(step):
                _, pos = decoder.raw_decode(text, pos)
                pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past ","
            continue
        while True:
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past ":"
            if key == step:
                break
            _, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past ","
    return pos


def _fault_line(text: str, path: FieldPath) -> int | None:
    """The line where the object holding the faulty field starts (the faulty value itself
    when the path ends at a list element); None when the text cannot be walked to it (a key
    given twice: the parse keeps the last, the walk finds the first)."""
    holder = path[:-1] if path and isinstance(path[-1], str) else path
    try:
        return text.count("\n", 0, value_offset(text, holder)) + 1
    except (ValueError, IndexError, KeyError):  # json.JSONDecodeError is a ValueError
        return None


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise QAFormatError(f"not valid UTF-8 (byte {exc.start + 1})", line) from exc
    return text.removeprefix("\ufeff")  # a byte-order mark


def read_squad_json(path: Path) -> list[QAExample]:
    text = _decode(path.read_bytes())
    try:
        doc = json_input.loads(text)
    except json_input.JsonInputError as exc:
        found = _JSON_LINE.search(exc.message)
        raise QAFormatError(exc.message, int(found.group(1)) if found else None) from exc
    try:
        return _squad_examples(doc)
    except _Fault as fault:
        line = _fault_line(text, fault.path) if fault.path else 1
        raise QAFormatError(fault.message, line, field_path(fault.path) or None) from None


# --- JSONL ----------------------------------------------------------------------------------


def _jsonl_example(obj: dict[str, Any], line: int, ids: _Ids) -> QAExample:
    qid = _text(obj, "id", ())
    ids.add(qid, f"line {line}", ("id",))
    question = _text(obj, "question", ())
    context = _text(obj, "context", ())
    answers = _field(obj, "answers", dict, ())
    texts: list[Any] = _field(answers, "text", list, ("answers",))
    starts: list[Any] = _field(answers, "answer_start", list, ("answers",))
    if len(texts) != len(starts):
        raise _Fault(
            f"answers.text has {len(texts)} entries but answers.answer_start {len(starts)}",
            ("answers",),
        )
    if not texts:
        raise _Fault("needs at least one answer", ("answers", "text"))
    for k, (text, start) in enumerate(zip(texts, starts, strict=True)):
        _check_answer(context, text, start, ("answers", "text", k), ("answers", "answer_start", k))
    return QAExample(qid, question, context, tuple(texts), tuple(starts))


def _jsonl_lines(path: Path, max_bytes_per_line: int | None) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line; a line over the bound is refused before
    it is read whole."""
    limit = max_bytes_per_line + 1 if max_bytes_per_line is not None else -1
    with path.open("rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(limit), b""), start=1):
            if max_bytes_per_line is not None and len(raw.rstrip(b"\r\n")) > max_bytes_per_line:
                raise QAFormatError(f"line longer than {max_bytes_per_line} bytes", lineno)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise QAFormatError(f"not valid UTF-8 (byte {exc.start + 1})", lineno) from exc
            if lineno == 1:
                text = text.removeprefix("\ufeff")
            if text.strip():
                yield lineno, text


def read_squad_jsonl(path: Path, max_bytes_per_line: int | None = None) -> list[QAExample]:
    ids = _Ids()
    out: list[QAExample] = []
    for line, text in _jsonl_lines(path, max_bytes_per_line):
        try:
            obj = json_input.loads(text)
        except json_input.JsonInputError as exc:
            # One line of JSON: its position is a character, not a line.
            message = _JSON_LINE.sub(r"(at character \2)", exc.message)
            raise QAFormatError(message, line) from exc
        if type(obj) is not dict:
            raise QAFormatError("each line must be a JSON object", line)
        try:
            out.append(_jsonl_example(obj, line, ids))
        except _Fault as fault:
            raise QAFormatError(fault.message, line, field_path(fault.path)) from None
    if not out:
        raise QAFormatError("the file holds no questions")
    return out


def read_squad(
    path: Path, fmt: QAFormat, *, max_bytes_per_line: int | None = None
) -> list[QAExample]:
    """Every question of the file, in file order; raises QAFormatError at the first fault.
    `max_bytes_per_line` bounds each JSONL line (a SQuAD JSON document is often one line:
    bound its size instead)."""
    if fmt == "squad":
        return read_squad_json(path)
    if fmt == "jsonl":
        return read_squad_jsonl(path, max_bytes_per_line)
    raise QAFormatError(f"unknown format {fmt!r} (squad or jsonl)")
