"""Tagged-token files: CoNLL columns and JSONL read, every fault named by line (and field),
schemes detected and checked, IOB1 -> IOB2 by hand, and the real CoNLL-2003 files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from app.services.conll_format import (
    TagFormatError,
    TaggedSentence,
    check_scheme,
    detect_scheme,
    read_tagged,
    tag_names,
    to_iob2,
)
from app.settings import Settings

CONLL = """-DOCSTART- -X- -X- O

EU NNP I-NP B-ORG
rejects VBZ I-VP O
German JJ I-NP B-MISC


Peter NNP I-NP B-PER
Blackburn NNP I-NP I-PER
-DOCSTART- -X- -X- O
BRUSSELS NNP I-NP B-LOC
"""


def write(tmp_path: Path, text: str | bytes, name: str = "data.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, *rows: object) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    return write(tmp_path, "\n".join(lines) + "\n", "data.jsonl")


def fault(path: Path, fmt: str = "conll", **kw: str) -> TagFormatError:
    with pytest.raises(TagFormatError) as info:
        read_tagged(path, fmt, **kw)  # type: ignore[arg-type]
    return info.value


def sent(*tags: str, line: int = 1) -> TaggedSentence:
    return TaggedSentence(tuple(f"w{i}" for i in range(len(tags))), tags, line)


# --- CoNLL ---------------------------------------------------------------------------------


def test_conll_sentences_lines_and_docstart(tmp_path: Path) -> None:
    got = read_tagged(write(tmp_path, CONLL), "conll")
    assert got == [
        TaggedSentence(("EU", "rejects", "German"), ("B-ORG", "O", "B-MISC"), 3),
        TaggedSentence(("Peter", "Blackburn"), ("B-PER", "I-PER"), 8),
        TaggedSentence(("BRUSSELS",), ("B-LOC",), 11),  # a -DOCSTART- line ends a sentence
    ]


def test_conll_tag_column_crlf_bom_and_no_final_newline(tmp_path: Path) -> None:
    text = "\ufeffEU B-ORG x\r\nsaid O y\r\n\r\nParis B-LOC z"
    got = read_tagged(write(tmp_path, text), "conll", tag_column="2")
    assert [(s.tokens, s.tags, s.line) for s in got] == [
        (("EU", "said"), ("B-ORG", "O"), 1),
        (("Paris",), ("B-LOC",), 4),
    ]
    assert fault(write(tmp_path, text), tag_column="3").line == 1  # "x" is no tag


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("EU NNP B-ORG\nsaid O\n", 2, "2 columns where the lines before have 3"),
        ("EU NNP B-ORG\n\nsaid VBD I-VP O\n", 3, "4 columns"),
        ("EU\n", 1, "a token and a tag"),
        ("EU B-ORG\nsaid X-O\n", 2, "'X-O' is not O"),
        ("EU E-ORG\n", 1, "'E-ORG'"),  # IOBES tags are not read
        ("EU B-\n", 1, "'B-'"),
        ("EU b-ORG\n", 1, "'b-ORG'"),
    ],
)
def test_conll_faults_name_the_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    e = fault(write(tmp_path, text))
    assert e.line == line and e.field is None and needle in e.message
    assert str(e) == f"line {line}: {e.message}"


def test_conll_tag_column_faults(tmp_path: Path) -> None:
    path = write(tmp_path, "\nEU NNP B-ORG\n")
    e = fault(path, tag_column="last")
    assert (e.line, e.field) == (None, "tag_column") and "column number" in e.message
    for bad in ("1", "4", "0"):
        e = fault(path, tag_column=bad)
        assert (e.line, e.field) == (2, "tag_column")
        assert str(e).startswith("line 2, tag_column: ")


def test_encoding_nul_and_empty_files(tmp_path: Path) -> None:
    e = fault(write(tmp_path, b"EU B-ORG\nM\xfcnchen B-LOC\n"))
    assert e.line == 2 and "UTF-8" in e.message
    assert fault(write(tmp_path, b"EU B-ORG\n\x00\n")).line == 2
    for empty in ("", "\n\n", "-DOCSTART- O\n\n"):
        e = fault(write(tmp_path, empty))
        assert e.line is None and e.message == "no sentences"
    assert fault(write(tmp_path, ""), "jsonl").message == "no sentences"


# --- JSONL ---------------------------------------------------------------------------------


def test_jsonl_sentences_default_and_named_field(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"tokens": ["EU", "said"], "tags": ["B-ORG", "O"]}, "",
                 {"tokens": ["Paris"], "tags": ["B-LOC"], "ner": ["O"]})  # fmt: skip
    assert read_tagged(path, "jsonl") == [
        TaggedSentence(("EU", "said"), ("B-ORG", "O"), 1),
        TaggedSentence(("Paris",), ("B-LOC",), 3),
    ]
    path = jsonl(tmp_path, {"tokens": ["EU"], "ner": ["I-ORG"]})
    assert read_tagged(path, "jsonl", tag_column="ner")[0].tags == ("I-ORG",)
    e = fault(path, "jsonl")
    assert (e.line, e.field) == (1, "tags") and "missing" in e.message


@pytest.mark.parametrize(
    ("row", "field", "needle"),
    [
        ("{not json", None, ""),
        ("[1, 2]", None, "not a JSON object"),
        ({"tags": ["O"]}, "tokens", "missing"),
        ({"tokens": "EU", "tags": ["O"]}, "tokens", "not a list"),
        ({"tokens": ["EU", 3], "tags": ["O", "O"]}, "tokens[1]", "not a string"),
        ({"tokens": ["EU"], "tags": [None]}, "tags[0]", "not a string"),
        ({"tokens": [], "tags": []}, "tokens", "empty sentence"),
        ({"tokens": ["EU", "said"], "tags": ["O"]}, "tags", "1 tags for 2 tokens"),
        ({"tokens": ["EU", "said", ""], "tags": ["O"] * 3}, "tokens[2]", "empty token"),
        ({"tokens": ["EU", " \t"], "tags": ["O"] * 2}, "tokens[1]", "empty token"),
        ({"tokens": list("abcd"), "tags": ["O", "O", "B-X", "S-X"]}, "tags[3]", "'S-X'"),
        ({"tokens": ["a"], "tags": ["I- X"]}, "tags[0]", "is not O"),
    ],
)
def test_jsonl_faults_name_line_and_field(
    tmp_path: Path, row: object, field: str | None, needle: str
) -> None:
    good = {"tokens": ["EU"], "tags": ["B-ORG"]}
    e = fault(jsonl(tmp_path, good, good, row), "jsonl")
    assert (e.line, e.field) == (3, field) and needle in e.message
    assert str(e).startswith(f"line 3, {field}: " if field else "line 3: ")


# --- schemes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "scheme"),
    [
        (("I-PER", "I-PER", "O"), "IOB1"),  # I- as the first token
        (("O", "I-LOC"), "IOB1"),  # after O
        (("B-PER", "I-LOC"), "IOB1"),  # after another type
        (("I-PER", "B-PER"), "IOB1"),  # B- only between two entities of one type
        (("B-PER", "I-PER", "O", "B-LOC"), "IOB2"),
        (("B-PER", "B-PER", "I-PER"), "IOB2"),
        (("O", "O"), "IOB2"),
    ],
)
def test_detect_scheme(tags: tuple[str, ...], scheme: str) -> None:
    assert detect_scheme([sent("B-ORG"), sent(*tags)]) == scheme


def test_check_scheme_names_the_token_line(tmp_path: Path) -> None:
    conll = read_tagged(write(tmp_path, "a B-PER\nb I-PER\n\nc O\nd O\ne I-LOC\n"), "conll")
    with pytest.raises(TagFormatError) as info:
        check_scheme(conll, "IOB2")
    assert (info.value.line, info.value.field) == (6, None)  # "e I-LOC", the sentence's 3rd
    assert "'I-LOC' does not continue an entity of type LOC" in info.value.message
    rows = [{"tokens": ["a"], "tags": ["B-PER"]},
            {"tokens": list("bcd"), "tags": ["O", "B-ORG", "I-LOC"]}]  # fmt: skip
    with pytest.raises(TagFormatError) as info:
        check_scheme(read_tagged(jsonl(tmp_path, *rows), "jsonl"), "IOB2")
    assert (info.value.line, info.value.field) == (2, "tags[2]")
    check_scheme(conll, "IOB1")  # every sequence of valid tags reads as IOB1
    check_scheme([sent("B-PER", "I-PER", "B-PER")], "IOB2")


def test_iob1_to_iob2_by_hand() -> None:
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG", "O", "B-MISC"]
    assert to_iob2(iob1, "IOB1") == [
        "B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG", "O", "B-MISC",
    ]  # fmt: skip
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    assert to_iob2(iob2, "IOB2") == iob2
    assert to_iob2(iob2, "IOB1") == iob2  # the identity on valid IOB2
    assert to_iob2(["I-X"], "IOB2") == ["I-X"]  # IOB2 is not repaired: check_scheme refuses it


def test_tag_names_order_and_scheme_independence() -> None:
    iob1 = [sent("I-PER", "O", "I-LOC"), sent("I-ORG", "I-ORG", "B-ORG")]
    names = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert tag_names(iob1) == names
    iob2 = [sent(*to_iob2(s.tags, "IOB1")) for s in iob1]  # no I-LOC, I-PER left
    assert tag_names(iob2) == names
    assert tag_names([sent("O")]) == ["O"]


# --- the real CoNLL-2003 files -------------------------------------------------------------


def conll2003_dir() -> Path:
    folder = Settings().data_dir / "conll2003"
    if not (folder / "train.txt").is_file() or not (folder / "dev.txt").is_file():
        pytest.skip(f"CoNLL-2003 not found at {folder} (DATA_DIR/conll2003/{{train,dev}}.txt)")
    return folder


@pytest.mark.parametrize(
    ("split", "sentences", "entities"),
    [
        # The CoNLL-2003 paper's counts (Tjong Kim Sang & De Meulder 2003, Table 2)
        ("train", 14_041, {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}),
        ("dev", 3_250, {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}),
    ],
)
def test_real_conll2003(split: str, sentences: int, entities: dict[str, int]) -> None:
    got = read_tagged(conll2003_dir() / f"{split}.txt", "conll")
    assert len(got) == sentences
    assert detect_scheme(got) == "IOB1"
    with pytest.raises(TagFormatError):
        check_scheme(got, "IOB2")
    iob2 = [to_iob2(s.tags, "IOB1") for s in got]
    check_scheme(
        [TaggedSentence(s.tokens, tuple(t), s.line) for s, t in zip(got, iob2, strict=True)], "IOB2"
    )
    assert Counter(t[2:] for tags in iob2 for t in tags if t.startswith("B-")) == entities
    assert tag_names(got) == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG",
                              "B-PER", "I-PER"]  # fmt: skip
