"""app.services.squad_format: SQuAD JSON and JSONL read strictly, each fault named by its line
and field; the real SQuAD files parse."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.services.squad_format import (
    QAExample,
    QAFormatError,
    field_path,
    read_squad,
    value_offset,
)
from app.settings import Settings

# One article, one paragraph, two questions; the line numbers below are this text's.
SQUAD = """{"version": "1.1", "data": [
 {"title": "Cats", "paragraphs": [
  {"context": "The cat sat on the mat.",
   "qas": [
    {"id": "q1", "question": "Who sat?",
     "answers": [{"text": "The cat", "answer_start": 0}]},
    {"id": "q2", "question": "Where did it sit?",
     "answers": [{"text": "the mat", "answer_start": 15}, {"text": "mat", "answer_start": 19}]}
   ]}
 ]}
]}
"""
Q2 = "data[0].paragraphs[0].qas[1]"


def write(tmp_path: Path, text: str | bytes, name: str = "data.json") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def squad_fault(tmp_path: Path, old: str, new: str, text: str = SQUAD) -> QAFormatError:
    assert old in text
    with pytest.raises(QAFormatError) as info:
        read_squad(write(tmp_path, text.replace(old, new, 1)), "squad")
    return info.value


# --- good files ------------------------------------------------------------------------------


def test_squad_json_reads_every_question_in_order(tmp_path: Path) -> None:
    examples = read_squad(write(tmp_path, SQUAD), "squad")
    context = "The cat sat on the mat."
    assert examples == [
        QAExample("q1", "Who sat?", context, ("The cat",), (0,)),
        QAExample("q2", "Where did it sit?", context, ("the mat", "mat"), (15, 19)),
    ]


def test_squad_json_on_one_line_with_a_byte_order_mark_and_extra_keys(tmp_path: Path) -> None:
    doc = json.loads(SQUAD)
    doc["data"][0]["paragraphs"][0]["qas"][0]["is_impossible"] = False
    doc["data"].append({"paragraphs": [{"context": "Rain falls.", "qas": []}]})  # no title
    raw = b"\xef\xbb\xbf" + json.dumps(doc).encode()
    examples = read_squad(write(tmp_path, raw), "squad")
    assert [ex.id for ex in examples] == ["q1", "q2"]


def jsonl(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def row(qid: str = "a", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": qid,
        "question": "Who sat?",
        "context": "The cat sat on the mat.",
        "answers": {"text": ["The cat", "cat"], "answer_start": [0, 4]},
    }
    return {**base, **over}


def test_jsonl_reads_every_line_skipping_blank_ones(tmp_path: Path) -> None:
    text = "\ufeff" + json.dumps(row("a", title="Cats")) + "\n\n  \n" + json.dumps(row("b"))
    examples = read_squad(write(tmp_path, text, "d.jsonl"), "jsonl")
    assert examples == [
        QAExample("a", "Who sat?", "The cat sat on the mat.", ("The cat", "cat"), (0, 4)),
        QAExample("b", "Who sat?", "The cat sat on the mat.", ("The cat", "cat"), (0, 4)),
    ]


def test_field_paths() -> None:
    assert field_path(("data", 0, "paragraphs", 3, "qas", 1)) == "data[0].paragraphs[3].qas[1]"
    assert field_path(("answers", "answer_start", 0)) == "answers.answer_start[0]"
    assert field_path(()) == ""


def test_value_offset_skips_siblings_to_the_value() -> None:
    text = '{"a": [1, {"x": "]"}, [2]], "b" : {"c": [10, 20, {"d": 1}]}}'
    assert text[value_offset(text, ("b", "c", 2)) :].startswith('{"d"')
    assert text[value_offset(text, ("a", 2)) :].startswith("[2]")
    assert value_offset(text, ()) == 0


# --- SQuAD JSON faults: line and field ----------------------------------------------------------


def test_the_answer_must_be_the_context_at_answer_start(tmp_path: Path) -> None:
    err = squad_fault(tmp_path, '"answer_start": 15', '"answer_start": 14')
    assert (err.line, err.field) == (8, f"{Q2}.answers[0].answer_start")
    assert err.message == "the answer 'the mat' is not the context at 14, which reads ' the ma'"
    assert str(err).startswith(f"line 8, field {Q2}.answers[0].answer_start: ")


def test_the_second_answer_is_checked_too(tmp_path: Path) -> None:
    err = squad_fault(tmp_path, '"answer_start": 19', '"answer_start": 18')
    assert (err.line, err.field) == (8, f"{Q2}.answers[1].answer_start")


def test_an_answer_past_the_end_of_the_context(tmp_path: Path) -> None:
    err = squad_fault(tmp_path, '"answer_start": 19', '"answer_start": 21')
    assert err.field == f"{Q2}.answers[1].answer_start"
    assert "runs past the end of the context (23 characters)" in err.message


START0 = f"{Q2}.answers[0].answer_start"
TEXT0 = f"{Q2}.answers[0].text"
PARAGRAPH = "data[0].paragraphs[0]"
SQUAD_FAULTS = [
    # (replace this, with this, line, field, message)
    ('"question": "Where did it sit?",', "", 7, f"{Q2}.question", "is missing"),
    ('"question": "Where did it sit?"', '"question": " "', 7, f"{Q2}.question", "is empty"),
    ('"id": "q2"', '"id": 2', 7, f"{Q2}.id", "must be a string"),
    ('"id": "q2"', '"id": ""', 7, f"{Q2}.id", "is empty"),
    ('"context": "The cat sat on the mat."', '"context": ""', 3, f"{PARAGRAPH}.context",
     "is empty"),
    ('"qas": [', '"qas": "x", "y": [', 3, f"{PARAGRAPH}.qas", "must be a list"),
    ('"title": "Cats"', '"title": 7', 2, "data[0].title", "must be a string"),
    ('{"text": "the mat", ', "{", 8, TEXT0, "is missing"),
    ('"text": "the mat"', '"text": ["the mat"]', 8, TEXT0, "must be a string"),
    ('"text": "the mat"', '"text": ""', 8, TEXT0, "is empty"),
    ('"answer_start": 15', '"answer_start": -1', 8, START0, "must not be negative (got -1)"),
    ('"answer_start": 15', '"answer_start": "15"', 8, START0, "must be an integer"),
    ('"answer_start": 15', '"answer_start": 15.0', 8, START0, "must be an integer"),
    ('"answer_start": 0', '"answer_start": true', 6,
     f"{PARAGRAPH}.qas[0].answers[0].answer_start", "must be an integer"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "line", "field", "message"), SQUAD_FAULTS)
def test_squad_faults_name_the_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, message: str
) -> None:
    err = squad_fault(tmp_path, old, new)
    assert (err.line, err.field, err.message) == (line, field, message)


def test_an_element_that_is_not_an_object_is_named_itself(tmp_path: Path) -> None:
    err = squad_fault(tmp_path, '{"text": "mat", "answer_start": 19}', '\n      "mat"')
    assert (err.line, err.field, err.message) == (9, f"{Q2}.answers[1]", "must be an object")


def test_duplicate_ids(tmp_path: Path) -> None:
    err = squad_fault(tmp_path, '"id": "q2"', '"id": "q1"')
    assert (err.line, err.field) == (7, f"{Q2}.id")
    assert err.message == "duplicate id 'q1' (first at data[0].paragraphs[0].qas[0])"


def test_every_question_needs_an_answer(tmp_path: Path) -> None:
    old = (
        '"answers": [{"text": "the mat", "answer_start": 15}, {"text": "mat", "answer_start": 19}]'
    )
    err = squad_fault(tmp_path, old, '"answers": []')
    assert (err.line, err.field, err.message) == (7, f"{Q2}.answers", "needs at least one answer")
    v2 = squad_fault(tmp_path, old, '"is_impossible": true, "answers": []')
    assert "unanswerable SQuAD v2.0 questions are not supported" in v2.message


def paragraph(prefix: str) -> dict[str, Any]:
    return {
        "context": "The cat sat on the mat.",
        "qas": [
            {"id": f"{prefix}1", "question": "Who?",
             "answers": [{"text": "The cat", "answer_start": 0}]},
            {"id": f"{prefix}2", "question": "Where?",
             "answers": [{"text": "the mat", "answer_start": 15},
                         {"text": "mat", "answer_start": 19}]},
        ],
    }  # fmt: skip


def test_faults_deep_in_a_later_article_are_located(tmp_path: Path) -> None:
    """value_offset skips whole articles, paragraphs and questions to reach the fault."""
    articles: list[dict[str, Any]] = [
        {"title": t, "paragraphs": [paragraph(t + "1"), paragraph(t + "2")]} for t in "ab"
    ]
    articles[1]["paragraphs"][1]["qas"][1]["answers"][1]["answer_start"] = 3  # " sa", not "mat"
    text = json.dumps({"data": articles}, indent=1)
    with pytest.raises(QAFormatError) as info:
        read_squad(write(tmp_path, text), "squad")
    assert info.value.field == "data[1].paragraphs[1].qas[1].answers[1].answer_start"
    # indent=1 writes the answer as "{", its text, its answer_start (the only 3), each a line
    lines = text.splitlines()
    answer_start_line = next(i + 1 for i, ln in enumerate(lines) if '"answer_start": 3' in ln)
    assert lines[answer_start_line - 3].strip() == "{"
    assert info.value.line == answer_start_line - 2


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("[]", 1, None, "must be an object"),
        ('{"data": {}}', 1, "data", "must be a list"),
        ('{"version": "1.1"}', 1, "data", "is missing"),
        ('{"data": []}', 1, "data", "holds no questions"),
        ('{"data": [\n7]}', 2, "data[0]", "must be an object"),
        ('{"data": [{"paragraphs": [\n[]]}]}', 2, "data[0].paragraphs[0]", "must be an object"),
    ],
)
def test_squad_document_faults(
    tmp_path: Path, text: str, line: int, field: str | None, message: str
) -> None:
    with pytest.raises(QAFormatError) as info:
        read_squad(write(tmp_path, text), "squad")
    assert (info.value.line, info.value.field, info.value.message) == (line, field, message)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    err = squad_fault(tmp_path, '"question": "Who sat?",', '"question": "Who sat?"')
    assert err.line == 6 and err.field is None
    assert err.message.startswith("not valid JSON: Expecting ',' delimiter (line 6")


def test_bounded_parse(tmp_path: Path) -> None:
    with pytest.raises(QAFormatError, match="nested deeper than 64 levels"):
        read_squad(write(tmp_path, '{"data": ' + "[" * 100 + "]" * 100 + "}"), "squad")
    with pytest.raises(QAFormatError, match="an integer with more than 20 digits"):
        read_squad(write(tmp_path, '{"data": [' + "1" * 30 + "]}"), "squad")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(QAFormatError) as info:
        read_squad(write(tmp_path, b'{"data":\n\n[\xff]}'), "squad")
    assert info.value.line == 3 and "not valid UTF-8" in info.value.message


# --- JSONL faults ---------------------------------------------------------------------------


def jsonl_fault(tmp_path: Path, text: str, **kw: Any) -> QAFormatError:
    with pytest.raises(QAFormatError) as info:
        read_squad(write(tmp_path, text, "d.jsonl"), "jsonl", **kw)
    return info.value


def answers(text: Any, start: Any) -> dict[str, Any]:
    return {"answers": {"text": text, "answer_start": start}}


JSONL_FAULTS = [
    # (fields of the faulty row, field, message)
    ({"question": None}, "question", "must be a string"),
    ({"context": "  "}, "context", "is empty"),
    ({"answers": [["The cat"], [0]]}, "answers", "must be an object"),
    ({"answers": {"text": ["The cat"]}}, "answers.answer_start", "is missing"),
    (answers("The cat", [0]), "answers.text", "must be a list"),
    (answers([], []), "answers.text", "needs at least one answer"),
    (answers(["The cat", "cat"], [0]), "answers",
     "answers.text has 2 entries but answers.answer_start 1"),
    (answers(["The cat", "cat"], [0, 5]), "answers.answer_start[1]",
     "the answer 'cat' is not the context at 5, which reads 'at '"),
    (answers(["The cat", 3], [0, 4]), "answers.text[1]", "must be a string"),
    (answers(["The cat"], [-2]), "answers.answer_start[0]", "must not be negative (got -2)"),
    (answers(["The cat"], [0.0]), "answers.answer_start[0]", "must be an integer"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "field", "message"), JSONL_FAULTS)
def test_jsonl_faults_name_the_line_and_field(
    tmp_path: Path, bad: dict[str, Any], field: str, message: str
) -> None:
    text = jsonl(row("a")) + "\n" + jsonl(row("b", **bad))  # a blank line 2: the fault is on 3
    err = jsonl_fault(tmp_path, text)
    assert (err.line, err.field, err.message) == (3, field, message)


def test_jsonl_missing_id_and_duplicate_ids(tmp_path: Path) -> None:
    no_id = {k: v for k, v in row().items() if k != "id"}
    err = jsonl_fault(tmp_path, jsonl(no_id))
    assert (err.line, err.field, err.message) == (1, "id", "is missing")
    err = jsonl_fault(tmp_path, jsonl(row("a"), row("b"), row("a")))
    assert (err.line, err.field, err.message) == (3, "id", "duplicate id 'a' (first at line 1)")


def test_jsonl_line_faults(tmp_path: Path) -> None:
    err = jsonl_fault(tmp_path, jsonl(row("a")) + '{"id": "b",, }\n')
    assert err.line == 2 and err.field is None
    assert err.message == "not valid JSON: Expecting property name enclosed in double quotes " \
        "(at character 12)"  # fmt: skip
    err = jsonl_fault(tmp_path, jsonl(row("a")) + "[1, 2]\n")
    assert (err.line, err.message) == (2, "each line must be a JSON object")
    raw = jsonl(row("a")).encode() + b'{"id": "\xff"}\n'
    with pytest.raises(QAFormatError) as info:
        read_squad(write(tmp_path, raw, "d.jsonl"), "jsonl")
    assert info.value.line == 2 and "not valid UTF-8" in info.value.message


def test_jsonl_line_bound(tmp_path: Path) -> None:
    first = jsonl(row("a"))
    long_row = jsonl(row("b", note="x" * 500))
    bound = len(first) + 10  # the first line fits, the second does not
    err = jsonl_fault(tmp_path, first + long_row, max_bytes_per_line=bound)
    assert (err.line, err.message) == (2, f"line longer than {bound} bytes")
    assert (
        len(read_squad(write(tmp_path, first, "d.jsonl"), "jsonl", max_bytes_per_line=bound)) == 1
    )


def test_an_empty_file_and_an_unknown_format(tmp_path: Path) -> None:
    err = jsonl_fault(tmp_path, "\n\n")
    assert (err.line, err.message) == (None, "the file holds no questions")
    with pytest.raises(QAFormatError, match="unknown format 'csv'"):
        read_squad(write(tmp_path, SQUAD), "csv")  # type: ignore[arg-type]


# --- the real files -------------------------------------------------------------------------


def squad_dir() -> Path:
    folder = Settings().data_dir / "squad"
    if not (folder / "train.json").is_file() or not (folder / "dev.json").is_file():
        pytest.skip(f"SQuAD not found at {folder} (DATA_DIR/squad/{{train,dev}}.json)")
    return folder


@pytest.mark.parametrize(
    ("split", "questions", "single_answer"),
    [("train", 11_877, True), ("dev", 4_961, False)],  # data/README.md's counts
)
def test_real_squad_files_parse(split: str, questions: int, single_answer: bool) -> None:
    started = time.perf_counter()
    examples = read_squad(squad_dir() / f"{split}.json", "squad")
    elapsed = time.perf_counter() - started
    assert len(examples) == questions
    assert len({ex.id for ex in examples}) == questions
    assert all(len(ex.answers) == 1 for ex in examples) is single_answer
    assert elapsed < 5.0, f"read_squad took {elapsed:.2f}s"


def test_a_key_given_twice_is_a_fault_without_a_line_not_a_crash(tmp_path: Path) -> None:
    qa = '{"id": 1, "question": "q", "answers": [{"text": "x", "answer_start": 0}]}'
    doc = '{"data": [], "data": [{"paragraphs": [{"context": "x y", "qas": [' + qa + "]}]}]}"
    path = tmp_path / "twice.json"
    path.write_text(doc, encoding="utf-8")
    with pytest.raises(QAFormatError) as err:
        read_squad(path, "squad")
    assert err.value.field == "data[0].paragraphs[0].qas[0].id" and err.value.line is None
