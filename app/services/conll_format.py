"""Read and check tagged-token files (named entities); errors name the line (and field).

Two formats. "conll": whitespace-separated columns, one token a line (the token first, the tag
the last column or `tag_column`, a 1-based column number), a blank line between sentences,
`-DOCSTART-` lines skipped; every token line has the same number of columns. "jsonl": one
`{"tokens": [...], "tags": [...]}` a line (`tag_column` names the tags field), each line parsed
with the bounded JSON parser (`app.services.json_input`).

A tag is `O`, `B-X` or `I-X` (X, the entity type, non-empty and without whitespace). Two schemes:
IOB2 (BIO: every entity starts with `B-`) and IOB1 (the original CoNLL-2003 one: `I-` starts an
entity, `B-` only where one follows another of the same type). Entity-level F1 is defined on
IOB2, so the worker converts with `to_iob2`. Torch-free: the upload API imports it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.services import json_input

TagFormat = Literal["conll", "jsonl"]
TagScheme = Literal["IOB1", "IOB2"]
DOCSTART = "-DOCSTART-"
MAX_LINE_CHARS = 1_000_000
_TAG = re.compile(r"[BI]-\S+")


@dataclass(frozen=True)
class TaggedSentence:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int  # the line where it starts
    # True (CoNLL): token i is on line `line + i`; False (JSONL): every token is on `line`
    token_per_line: bool = field(default=False, compare=False, repr=False)


class TagFormatError(ValueError):
    """A refusal; `str()` reads "line 12, tags[3]: <message>"."""

    def __init__(self, message: str, line: int | None = None, field: str | None = None) -> None:
        where = ", ".join(p for p in (f"line {line}" if line else "", field or "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.line = line
        self.field = field


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break) of a UTF-8 file, each line bounded."""
    with path.open("rb") as f:
        # readline(limit): one huge line is never read whole into memory.
        for lineno, raw in enumerate(iter(lambda: f.readline(4 * MAX_LINE_CHARS + 1), b""), 1):
            if len(raw) > 4 * MAX_LINE_CHARS:
                raise TagFormatError(f"line longer than {MAX_LINE_CHARS} characters", lineno)
            if b"\x00" in raw:
                raise TagFormatError("NUL byte (binary data?)", lineno)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TagFormatError(f"not valid UTF-8 (byte {e.start + 1})", lineno) from e
            yield lineno, (text.removeprefix("\ufeff") if lineno == 1 else text).rstrip("\r\n")


def _check_tag(tag: str, line: int, field: str | None = None) -> None:
    if tag != "O" and not _TAG.fullmatch(tag):
        raise TagFormatError(f"tag {tag!r} is not O, B-<type> or I-<type>", line, field)


def _tag_index(tag_column: str | None, columns: int, line: int) -> int:
    """The 0-based index of the tag column in a CoNLL line of `columns` columns."""
    if columns < 2:
        raise TagFormatError("a token line needs a token and a tag (two columns or more)", line)
    if tag_column is None:
        return columns - 1
    if not tag_column.isdecimal():
        raise TagFormatError(
            f"must be a column number for a CoNLL file, not {tag_column!r}", field="tag_column"
        )
    if not 2 <= int(tag_column) <= columns:
        raise TagFormatError(
            f"column {tag_column} is not a tag column: the token is column 1 and the lines "
            f"have {columns} columns",
            line,
            "tag_column",
        )
    return int(tag_column) - 1


def _read_conll(path: Path, tag_column: str | None) -> list[TaggedSentence]:
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = width = tag_at = 0

    def close() -> None:
        if tokens:
            sentences.append(TaggedSentence(tuple(tokens), tuple(tags), start, True))
            tokens.clear()
            tags.clear()

    for lineno, text in _lines(path):
        cols = text.split()
        if not cols or cols[0] == DOCSTART:
            close()
            continue
        if not width:
            width, tag_at = len(cols), _tag_index(tag_column, len(cols), lineno)
        elif len(cols) != width:
            raise TagFormatError(f"{len(cols)} columns where the lines before have {width}", lineno)
        _check_tag(cols[tag_at], lineno)
        if not tokens:
            start = lineno
        tokens.append(cols[0])
        tags.append(cols[tag_at])
    close()
    return sentences


def _strings(row: dict[str, Any], key: str, line: int) -> list[str]:
    value = row.get(key)
    if not isinstance(value, list):
        raise TagFormatError("missing, or not a list", line, key)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise TagFormatError(f"not a string: {item!r}", line, f"{key}[{i}]")
    return value


def _jsonl_sentence(text: str, line: int, tags_key: str) -> TaggedSentence:
    try:
        row = json_input.loads(text)
    except json_input.JsonInputError as e:
        raise TagFormatError(e.message, line) from e
    if not isinstance(row, dict):
        raise TagFormatError('not a JSON object {"tokens": [...], "tags": [...]}', line)
    tokens, tags = _strings(row, "tokens", line), _strings(row, tags_key, line)
    if not tokens:
        raise TagFormatError("an empty sentence", line, "tokens")
    if len(tags) != len(tokens):
        raise TagFormatError(f"{len(tags)} tags for {len(tokens)} tokens", line, tags_key)
    for i, token in enumerate(tokens):
        if not token.strip():
            raise TagFormatError("an empty token", line, f"tokens[{i}]")
    for i, tag in enumerate(tags):
        _check_tag(tag, line, f"{tags_key}[{i}]")
    return TaggedSentence(tuple(tokens), tuple(tags), line)


def read_tagged(
    path: Path, fmt: TagFormat, *, tag_column: str | None = None
) -> list[TaggedSentence]:
    """Every sentence of the file, tags checked one by one (not yet against a scheme)."""
    if fmt == "conll":
        sentences = _read_conll(path, tag_column)
    elif fmt == "jsonl":
        key = tag_column or "tags"
        sentences = [_jsonl_sentence(t, n, key) for n, t in _lines(path) if t.strip()]
    else:
        raise TagFormatError(f"unknown format {fmt!r} (conll or jsonl)")
    if not sentences:
        raise TagFormatError("no sentences")
    return sentences


def _entity_type(tag: str) -> str | None:
    return None if tag == "O" else tag[2:]


def _broken_iob2(tags: Sequence[str]) -> int | None:
    """The index of the first `I-X` that does not continue an X entity, or None."""
    prev: str | None = None
    for i, tag in enumerate(tags):
        kind = _entity_type(tag)
        if tag.startswith("I-") and kind != prev:
            return i
        prev = kind
    return None


def detect_scheme(sentences: Sequence[TaggedSentence]) -> TagScheme:
    """IOB1 where some `I-X` begins an entity (the first token, after `O` or after another
    type), which IOB2 never does; else IOB2. (IOB1's other mark, a `B-X` only ever directly
    after the same type, implies the first: the entity it follows began with an `I-X`.)
    All-`O` data reads as IOB2; both schemes convert it alike."""
    broken = any(_broken_iob2(s.tags) is not None for s in sentences)
    return "IOB1" if broken else "IOB2"


def check_scheme(sentences: Sequence[TaggedSentence], scheme: TagScheme) -> None:
    """Refuse tags that `scheme` does not allow: under IOB2, an `I-X` that does not continue
    an X entity (the error names that token's line, and for JSONL its `tags[i]`). Every
    sequence of tags reads as IOB1 (a `B-X` after `O` simply starts an entity, as conlleval
    reads it), so IOB1 refuses nothing."""
    if scheme == "IOB1":
        return
    for s in sentences:
        if (i := _broken_iob2(s.tags)) is not None:
            kind = _entity_type(s.tags[i])
            raise TagFormatError(
                f"tag {s.tags[i]!r} does not continue an entity of type {kind}, as IOB2 "
                "requires (B- starts an entity); is the file IOB1?",
                s.line + i if s.token_per_line else s.line,
                None if s.token_per_line else f"tags[{i}]",
            )


def to_iob2(tags: Sequence[str], scheme: TagScheme) -> list[str]:
    """The tags in IOB2: under IOB1 an `I-X` that begins an entity becomes `B-X`; IOB2 tags
    are returned as they are (the conversion is the identity on valid IOB2)."""
    if scheme == "IOB2":
        return list(tags)
    out: list[str] = []
    prev: str | None = None
    for tag in tags:
        kind = _entity_type(tag)
        out.append(f"B-{kind}" if tag.startswith("I-") and kind != prev else tag)
        prev = kind
    return out


def tag_names(sentences: Sequence[TaggedSentence]) -> list[str]:
    """The model's labels: "O", then `B-X`, `I-X` for each entity type X in sorted order
    (both for every type seen, so the same types give the same labels in either scheme)."""
    kinds = sorted({t[2:] for s in sentences for t in s.tags if t != "O"})
    return ["O", *(f"{p}-{k}" for k in kinds for p in ("B", "I"))]
