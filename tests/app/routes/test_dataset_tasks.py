"""POST /v1/datasets for each task: regression tables, CoNLL and tagged JSONL (token
classification), SQuAD JSON and JSONL (question answering). A good upload records the task,
labels, rows and options; every refusal is a 422 naming the line and the column or field, and
stores nothing (no row, no object)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import UploadedDataset
from tests.app.conftest import MakeClient, count_rows, stored_objects

# --- files -----------------------------------------------------------------------------------

PAIRS = [("A man plays a guitar.", "A man plays music.", "4.2"),
         ("A dog runs.", "A cat sleeps.", "0.4"), ("Kids swim.", "Children swim.", "5"),
         ("He cooks.", "She reads.", "0"), ("It rains.", "Rain falls.", "4.8"),
         ("A car.", "A truck.", "2.5"), ("Birds fly.", "Planes fly.", "1.75"),
         ("Tea is hot.", "Coffee is hot.", "3"), ("I run.", "I jog.", "4"),
         ("Sun sets.", "Moon rises.", " 1.0 ")]  # fmt: skip
STS_CSV = "sentence1,sentence2,score\n" + "".join(f'"{a}","{b}",{s}\n' for a, b, s in PAIRS)

# CoNLL-2003 style (token POS chunk NER, IOB1: I- starts an entity, B- only between two of a
# type): 9 sentences after a -DOCSTART- line.
CONLL_SENTENCES = [
    [("EU", "I-ORG"), ("rejects", "O"), ("German", "I-MISC"), ("call", "O")],
    [("Peter", "I-PER"), ("Blackburn", "I-PER")],
    [("BRUSSELS", "I-LOC"), ("1996-08-22", "O")],
    [("Germany", "I-LOC"), ("and", "O"), ("France", "I-LOC")],
    [("Rome", "I-LOC"), ("Paris", "B-LOC")],  # two adjacent LOC entities: B- marks the second
    [("Nadim", "I-PER"), ("Ladki", "I-PER"), ("spoke", "O")],
    [("The", "O"), ("commission", "O"), ("said", "O")],
    [("Reuters", "I-ORG"), ("reported", "O")],
    [("Clinton", "I-PER"), ("met", "O"), ("Yeltsin", "I-PER")],
]


def conll(sentences: list[list[tuple[str, str]]] = CONLL_SENTENCES) -> bytes:
    blocks = ["-DOCSTART- -X- -X- O\n"]
    for sent in sentences:
        blocks.append("".join(f"{tok} NNP I-NP {tag}\n" for tok, tag in sent))
    return "\n".join(blocks).encode()


def conll_line(sentence: int, token: int) -> int:
    """The file line of a token: the DOCSTART line, a blank, then each sentence and a blank."""
    return 3 + sum(len(s) + 1 for s in CONLL_SENTENCES[:sentence]) + token


TAGGED = [(["John", "lives", "in", "New", "York"], ["B-PER", "O", "O", "B-LOC", "I-LOC"]),
          (["Mary", "Smith", "works"], ["B-PER", "I-PER", "O"]),
          (["Acme", "Corp", "hired", "Bob"], ["B-ORG", "I-ORG", "O", "B-PER"])] * 3  # fmt: skip


def tagged_jsonl(rows: list[tuple[list[str], list[str]]] = TAGGED, key: str = "tags") -> bytes:
    return "".join(json.dumps({"tokens": t, key: g}) + "\n" for t, g in rows).encode()


CONTEXTS = ["Paris is the capital of France and its largest city.",
            "The Nile flows north through Egypt into the Mediterranean Sea."]  # fmt: skip
QUESTIONS = [(0, "What is the capital of France?", "Paris"),
             (0, "Which country is Paris in?", "France"),
             (0, "What is Paris besides the capital?", "its largest city"),
             (1, "Which river flows through Egypt?", "The Nile"),
             (1, "Where does the Nile flow?", "north"),
             (1, "Into which sea does the Nile flow?", "Mediterranean Sea"),
             (1, "Which country does the Nile cross?", "Egypt"),
             (0, "Is Paris large?", "largest city"),
             (1, "What flows north?", "Nile")]  # fmt: skip


def squad_doc(questions: list[tuple[int, str, str]] = QUESTIONS) -> dict[str, Any]:
    paragraphs: list[dict[str, Any]] = [{"context": c, "qas": []} for c in CONTEXTS]
    for i, (p, question, answer) in enumerate(questions):
        start = CONTEXTS[p].index(answer)
        paragraphs[p]["qas"].append(
            {
                "id": f"q{i}",
                "question": question,
                "answers": [{"text": answer, "answer_start": start}],
            }
        )
    return {"version": "1.1", "data": [{"title": "Places", "paragraphs": paragraphs}]}


def squad_json(doc: dict[str, Any] | None = None) -> bytes:
    return json.dumps(doc or squad_doc(), indent=1).encode()


def squad_jsonl(questions: list[tuple[int, str, str]] = QUESTIONS, shift: int = -1) -> bytes:
    """One question a line; question number `shift` has its answer one character off."""
    rows = [{"id": f"q{i}", "question": q, "context": CONTEXTS[p],
             "answers": {"text": [a], "answer_start": [CONTEXTS[p].index(a) + (i == shift)]}}
            for i, (p, q, a) in enumerate(questions)]  # fmt: skip
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


# --- helpers ---------------------------------------------------------------------------------


def upload(client: TestClient, data: bytes, filename: str, **form: str) -> Any:
    return client.post("/v1/datasets", files={"file": (filename, data)}, data=form)


def created(r: Any, db_session: Session) -> tuple[dict[str, Any], UploadedDataset]:
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    row = db_session.get(UploadedDataset, uuid.UUID(body["id"]))
    assert row is not None
    return body, row


def refused(
    r: Any, db_session: Session, settings_env: Path, before: dict[str, int], code: str,
    field: str | None,
) -> dict[str, Any]:  # fmt: skip
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert (body["code"], body.get("field")) == (code, field), body
    assert count_rows(db_session) == before
    assert stored_objects(settings_env / "artifacts") == []
    return body


# --- the task field --------------------------------------------------------------------------


def test_the_default_task_is_sequence_classification(
    client: TestClient, db_session: Session
) -> None:
    data = b"text,label\n" + b"".join(b"row %d,%d\n" % (i, i % 2) for i in range(8))
    body, row = created(upload(client, data, "d.csv"), db_session)
    assert body["task"] == row.task == "sequence_classification"
    assert body["options"] == row.options == {}
    assert client.get(f"/v1/datasets/{body['id']}").json()["task"] == "sequence_classification"


def test_an_unknown_task_is_a_validation_problem(
    client: TestClient, db_session: Session, settings_env: Path
) -> None:
    before = count_rows(db_session)
    r = upload(client, STS_CSV.encode(), "d.csv", task="summarization")
    refused(r, db_session, settings_env, before, "validation_error", "task")


@pytest.mark.parametrize(
    ("task", "form", "field"),
    [
        ("sequence_classification", {"tag_scheme": "IOB2"}, "tag_scheme"),
        ("regression", {"tag_column": "tags"}, "tag_column"),
        ("token_classification", {"text_columns": "text"}, "text_columns"),
        ("token_classification", {"label_column": "ner"}, "label_column"),
        ("question_answering", {"label_column": "answers"}, "label_column"),
    ],
)
def test_a_field_of_another_tasks_upload_is_refused_by_name(
    client: TestClient, db_session: Session, settings_env: Path, task: str,
    form: dict[str, str], field: str,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    body = refused(upload(client, STS_CSV.encode(), "d.csv", task=task, **form), db_session,
                   settings_env, before, "invalid_option", field)  # fmt: skip
    assert f"{field} is not a field of a {task} upload" in body["detail"]


@pytest.mark.parametrize(
    ("task", "filename", "form", "part"),
    [
        ("token_classification", "d.csv", {}, "name it .conll, .txt, .jsonl, .ndjson"),
        ("token_classification", "d.conll", {"format": "csv"}, "conll or jsonl"),
        ("question_answering", "d.txt", {}, "name it .json, .jsonl, .ndjson"),
        ("question_answering", "d.json", {"format": "conll"}, "squad or jsonl"),
        ("regression", "d.json", {}, "name it .csv"),
        ("sequence_classification", "d.json", {"format": "squad"}, "csv, tsv or jsonl"),
    ],
)
def test_each_task_takes_its_own_formats(
    client: TestClient, db_session: Session, settings_env: Path, task: str, filename: str,
    form: dict[str, str], part: str,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    body = refused(upload(client, b"x\n", filename, task=task, **form), db_session,
                   settings_env, before, "invalid_dataset", "format")  # fmt: skip
    assert part in body["detail"], body


# --- regression ------------------------------------------------------------------------------


def test_a_regression_table_records_its_score_column_and_range(
    client: TestClient, db_session: Session
) -> None:
    body, row = created(upload(client, STS_CSV.encode(), "sts.csv", task="regression"),
                        db_session)  # fmt: skip
    assert (row.task, row.format, row.num_rows) == ("regression", "csv", 10)
    assert row.text_columns == ["sentence1", "sentence2"]
    assert (row.label_column, row.labels) == ("score", [])
    assert row.options == {"score_min": 0.0, "score_max": 5.0}
    assert body["options"] == row.options and body["task"] == "regression"


def test_the_score_column_falls_back_to_label_or_is_named(
    client: TestClient, db_session: Session
) -> None:
    labelled = "text,label\n" + "".join(f"t{i},{i / 4}\n" for i in range(8))
    _, row = created(upload(client, labelled.encode(), "d.csv", task="regression"), db_session)
    assert (row.label_column, row.options["score_max"]) == ("label", 1.75)
    rows = [{"body": f"row {i}", "y": i - 3, "score": "not this one"} for i in range(8)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    _, row = created(upload(client, data, "d.jsonl", task="regression", text_columns="body",
                            label_column="y"), db_session)  # fmt: skip
    assert (row.label_column, row.text_columns) == ("y", ["body"])
    assert row.options == {"score_min": -3.0, "score_max": 4.0}


def _sts_with(line: int, score: str) -> bytes:
    lines = STS_CSV.splitlines(keepends=True)
    a, b, _ = PAIRS[line - 2]
    lines[line - 1] = f'"{a}","{b}",{score}\n'
    return "".join(lines).encode()


REGRESSION_BAD: list[tuple[str, bytes, dict[str, str], str, int | None, str | None, str]] = [
    # name, content, form, message part, line, column, field
    ("not-a-number", _sts_with(5, "high"), {}, "score 'high' is not a number", 5, "score",
     "file"),
    ("empty-score", _sts_with(3, ""), {}, "an empty score", 3, "score", "file"),
    ("nan", _sts_with(7, "nan"), {}, "is not a number", 7, "score", "file"),
    ("too-large", _sts_with(4, "1e999"), {}, "too large for a float", 4, "score", "file"),
    ("empty-text-first", _sts_with(6, "x").replace(b'"A dog runs."', b'""'), {},
     "empty value", 3, "sentence1", "file"),
    ("seven-rows", "".join(STS_CSV.splitlines(keepends=True)[:8]).encode(), {},
     "7 rows; at least 8", None, None, "file"),
    ("one-score", ("text,score\n" + "t,2.5\n" * 9).encode(), {},
     "every score is 2.5", None, "score", "file"),
    ("no-such-column", STS_CSV.encode(), {"label_column": "similarity"}, "no such column", 1,
     "similarity", "label_column"),
    ("bad-csv", STS_CSV.encode().replace(b'"Kids swim."', b"Kids,swim"), {}, "4 fields", 4,
     None, "file"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "form", "part", "line", "column", "field"),
                         [b[1:] for b in REGRESSION_BAD],
                         ids=[b[0] for b in REGRESSION_BAD])  # fmt: skip
def test_a_bad_regression_table_is_refused_naming_line_and_column(
    client: TestClient, db_session: Session, settings_env: Path, data: bytes,
    form: dict[str, str], part: str, line: int | None, column: str | None, field: str,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    body = refused(upload(client, data, "sts.csv", task="regression", **form), db_session,
                   settings_env, before, "invalid_dataset", field)  # fmt: skip
    assert part in body["detail"], body
    assert body["errors"] == [{"line": line, "column": column, "msg": body["errors"][0]["msg"]}]
    assert part in body["errors"][0]["msg"]


# --- token classification --------------------------------------------------------------------


def test_a_conll_file_records_iob2_tags_its_column_and_scheme(
    client: TestClient, db_session: Session
) -> None:
    body, row = created(upload(client, conll(), "train.conll", task="token_classification"),
                        db_session)  # fmt: skip
    assert (row.task, row.format, row.num_rows) == ("token_classification", "conll", 9)
    assert row.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER",
                          "I-PER"]  # fmt: skip
    assert (row.columns, row.text_columns) == ([], [])
    assert row.label_column == "4"  # the last of 4 columns, as read_tagged takes it
    assert row.options == body["options"] == {"tag_scheme": "IOB1"}


def test_a_txt_file_is_conll_and_a_tag_column_can_be_named(
    client: TestClient, db_session: Session
) -> None:
    """Column 3 (the chunk tags, all I-NP) is a valid tag column too: one entity type."""
    _, row = created(upload(client, conll(), "eng.txt", task="token_classification",
                            tag_column="3"), db_session)  # fmt: skip
    assert (row.format, row.label_column, row.labels) == ("conll", "3", ["O", "B-NP", "I-NP"])
    assert row.options == {"tag_scheme": "IOB1"}


def test_tagged_jsonl_records_its_tags_field(client: TestClient, db_session: Session) -> None:
    _, row = created(upload(client, tagged_jsonl(), "ner.jsonl", task="token_classification"),
                     db_session)  # fmt: skip
    assert (row.format, row.label_column, row.num_rows) == ("jsonl", "tags", 9)
    assert row.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert row.options == {"tag_scheme": "IOB2"}
    data = tagged_jsonl(key="ner")
    _, row = created(upload(client, data, "ner.jsonl", task="token_classification",
                            tag_column="ner", tag_scheme="IOB2"), db_session)  # fmt: skip
    assert row.label_column == "ner"


def _conll_with(sentence: int, token: int, tag: str) -> bytes:
    sents = [list(s) for s in CONLL_SENTENCES]
    sents[sentence][token] = (sents[sentence][token][0], tag)
    return conll(sents)


TOKEN_BAD: list[tuple[str, bytes, str, dict[str, str], str, int | None, str | None, str]] = [
    # name, content, filename, form, message part, line, field path, form field
    ("bad-tag", _conll_with(3, 2, "X-LOC"), "d.conll", {}, "tag 'X-LOC' is not O",
     conll_line(3, 2), None, "file"),
    ("iob2-forced-on-iob1", conll(), "d.conll", {"tag_scheme": "IOB2"},
     "does not continue an entity", conll_line(0, 0), None, "file"),
    ("ragged-columns", conll().replace(b"rejects NNP I-NP O", b"rejects O"), "d.conll", {},
     "2 columns where the lines before have 4", conll_line(0, 1), None, "file"),
    ("tag-column-out-of-range", conll(), "d.conll", {"tag_column": "9"},
     "column 9 is not a tag column", conll_line(0, 0), None, "tag_column"),
    ("too-few-sentences", conll(CONLL_SENTENCES[:7]), "d.conll", {}, "7 sentences; at least 8",
     None, None, "file"),
    ("all-o", conll([[("a", "O"), ("b", "O")]] * 8), "d.conll", {}, "every tag is O", None,
     None, "file"),
    ("jsonl-lengths", tagged_jsonl([*TAGGED[:4], (["a", "b"], ["O"]), *TAGGED[4:]]), "d.jsonl",
     {}, "1 tags for 2 tokens", 5, "tags", "file"),
    ("jsonl-tag", tagged_jsonl([*TAGGED[:1], (["a"], ["B-"])]), "d.jsonl", {},
     "tag 'B-' is not O", 2, "tags[0]", "file"),
    ("jsonl-iob2-broken", tagged_jsonl([*TAGGED[:2], (["x", "y"], ["O", "I-PER"])]), "d.jsonl",
     {"tag_scheme": "IOB2"}, "does not continue", 3, "tags[1]", "file"),
    ("jsonl-missing-field", tagged_jsonl(TAGGED, key="labels"), "d.jsonl", {},
     "missing, or not a list", 1, "tags", "file"),
    ("not-utf8", conll().replace(b"Germany", b"Germ\xffny"), "d.conll", {}, "UTF-8",
     conll_line(3, 0), None, "file"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "filename", "form", "part", "line", "path", "field"),
                         [b[1:] for b in TOKEN_BAD], ids=[b[0] for b in TOKEN_BAD])  # fmt: skip
def test_a_bad_tagged_file_is_refused_naming_line_and_field(
    client: TestClient, db_session: Session, settings_env: Path, data: bytes, filename: str,
    form: dict[str, str], part: str, line: int | None, path: str | None, field: str,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    body = refused(upload(client, data, filename, task="token_classification", **form),
                   db_session, settings_env, before, "invalid_dataset", field)  # fmt: skip
    assert part in body["detail"], body
    [error] = body["errors"]
    assert error["line"] == line, body
    assert error.get("field") == path, body
    if line is not None:
        assert f"line {line}" in body["detail"]


def test_a_file_read_whole_is_capped_lower_than_a_table(
    make_client: MakeClient, db_session: Session
) -> None:
    client = make_client(max_whole_file_dataset_bytes="100")
    before = count_rows(db_session)
    r = upload(client, conll(), "d.conll", task="token_classification")
    assert r.status_code == 413, r.text
    problem = r.json()
    assert (problem["code"], problem["field"]) == ("payload_too_large", "file")
    assert problem["detail"].startswith("upload larger than 100 bytes: a token_classification")
    assert count_rows(db_session) == before
    # A table over 100 bytes is not held to that cap.
    assert upload(client, STS_CSV.encode(), "d.csv", task="regression").status_code == 201


# --- question answering ----------------------------------------------------------------------


@pytest.mark.parametrize(("data", "filename", "fmt"),
                         [(squad_json(), "train.json", "squad"),
                          (squad_jsonl(), "train.jsonl", "jsonl")],
                         ids=["squad-json", "jsonl"])  # fmt: skip
def test_a_question_answering_file_records_its_questions(
    client: TestClient, db_session: Session, data: bytes, filename: str, fmt: str
) -> None:
    body, row = created(upload(client, data, filename, task="question_answering"), db_session)
    assert (row.task, row.format, row.num_rows) == ("question_answering", fmt, 9)
    assert (row.labels, row.columns, row.text_columns) == ([], [], [])
    assert row.label_column == "answers" and row.options == {}
    assert body["num_rows"] == 9


def _squad_with(change: str) -> bytes:
    doc = squad_doc()
    qa = doc["data"][0]["paragraphs"][1]["qas"][2]  # q5: "Mediterranean Sea"
    if change == "offset":
        qa["answers"][0]["answer_start"] += 1
    elif change == "duplicate":
        qa["id"] = "q0"
    elif change == "no-answers":
        qa["answers"] = []
    return squad_json(doc)


def _line_of(data: bytes, needle: bytes) -> int:
    return data[: data.index(needle)].count(b"\n") + 1


QA_BAD: list[tuple[str, bytes, str, str, int | None, str | None]] = [
    # name, content, filename, message part, line, field path
    ("offset", _squad_with("offset"), "d.json", "is not the context at",
     _line_of(_squad_with("offset"), b'"text": "Mediterranean Sea"') - 1,
     "data[0].paragraphs[1].qas[2].answers[0].answer_start"),
    ("duplicate-id", _squad_with("duplicate"), "d.json", "duplicate id 'q0'",
     _line_of(_squad_with("duplicate"), b'"question": "Into which sea') - 2,
     "data[0].paragraphs[1].qas[2].id"),
    ("no-answers", _squad_with("no-answers"), "d.json", "needs at least one answer",
     _line_of(_squad_with("no-answers"), b'"question": "Into which sea') - 2,
     "data[0].paragraphs[1].qas[2].answers"),
    ("too-few", squad_json(squad_doc(QUESTIONS[:7])), "d.json", "7 questions; at least 8",
     None, None),
    ("not-json", b'{"data": [', "d.json", "JSON", 1, None),
    ("jsonl-offset", squad_jsonl(shift=4), "d.jsonl", "is not the context at 16", 5,
     "answers.answer_start[0]"),  # "north" is at 15 of "The Nile flows north ..."
    ("jsonl-not-object", squad_jsonl() + b"[1]\n", "d.jsonl", "JSON object", 10, None),
]  # fmt: skip


@pytest.mark.parametrize(("data", "filename", "part", "line", "path"),
                         [b[1:] for b in QA_BAD], ids=[b[0] for b in QA_BAD])  # fmt: skip
def test_a_bad_question_answering_file_is_refused_naming_line_and_field(
    client: TestClient, db_session: Session, settings_env: Path, data: bytes, filename: str,
    part: str, line: int | None, path: str | None,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    body = refused(upload(client, data, filename, task="question_answering"), db_session,
                   settings_env, before, "invalid_dataset", "file")  # fmt: skip
    assert part in body["detail"], body
    [error] = body["errors"]
    assert (error["line"], error.get("field")) == (line, path), body


# --- jobs on what was uploaded ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "data", "filename"),
    [("regression", STS_CSV.encode(), "sts.csv"),
     ("token_classification", conll(), "ner.conll"),
     ("question_answering", squad_json(), "qa.json")],
    ids=["regression", "token_classification", "question_answering"],
)  # fmt: skip
def test_each_upload_serves_a_job_of_its_task_only(
    client: TestClient, db_session: Session, task: str, data: bytes, filename: str
) -> None:
    dataset_id = upload(client, data, filename, task=task).json()["id"]
    spec = {"task": task, "model": "minilm-l6", "dataset": {"name": dataset_id}}
    assert client.post("/v1/jobs", json=spec).status_code == 202
    before = count_rows(db_session)
    r = client.post("/v1/jobs", json={**spec, "task": "sequence_classification"})
    assert r.status_code == 422 and r.json()["code"] == "task_mismatch", r.text
    assert r.json()["field"] == "task"
    assert f"serves the {task} task" in r.json()["detail"]
    assert count_rows(db_session) == before
