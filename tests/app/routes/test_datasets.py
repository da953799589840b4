from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.services.datasets import DEFAULT_TEXT_COLUMNS
from tests.app.conftest import MakeClient, count_rows, stored_objects

HEADER = "text,label\n"
ROWS = [f"example number {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10)]
GOOD_CSV = (HEADER + "".join(ROWS)).encode()


def upload(client: TestClient, data: bytes, filename: str = "d.csv", **form: str) -> Any:
    return client.post("/v1/datasets", files={"file": (filename, data)}, data=form)


def invalid(r: Any) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == "invalid_dataset", body
    return body


def test_upload_csv(client: TestClient, settings_env: Path) -> None:
    r = upload(client, GOOD_CSV, "reviews.csv")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "reviews"
    assert body["format"] == "csv"
    assert body["columns"] == ["text", "label"]
    assert body["text_columns"] == ["text"]
    assert body["label_column"] == "label"
    assert body["labels"] == ["neg", "pos"]
    assert body["num_rows"] == 10
    assert len(stored_objects(settings_env / "artifacts")) == 1
    assert client.get(f"/v1/datasets/{body['id']}").json()["sha256"] == body["sha256"]
    assert [d["id"] for d in client.get("/v1/datasets").json()["items"]] == [body["id"]]
    ok = client.post("/v1/jobs", json={"model": "minilm-l6", "dataset": {
        "name": body["id"], "text_columns": ["text"], "label_column": "label"}})  # fmt: skip
    assert ok.status_code == 202, ok.text
    for spec_ds, field in (
        ({"text_columns": ["body"]}, "dataset.text_columns"),
        ({"label_column": "sentiment"}, "dataset.label_column"),
    ):
        job_spec = {"model": "minilm-l6", "dataset": {"name": body["id"], **spec_ds}}
        r = client.post("/v1/jobs", json=job_spec)
        assert r.status_code == 422 and r.json()["field"] == field, r.text


def test_upload_tsv_with_sentence_pairs_and_quotes(client: TestClient) -> None:
    lines = ["sentence1\tsentence2\tlabel"] + [
        f'He said "hi {i}"\tshe left\t{i % 3}' for i in range(9)
    ]
    r = upload(client, ("\n".join(lines) + "\n").encode(), "pairs.tsv")
    assert r.status_code == 201, r.text
    assert r.json()["text_columns"] == ["sentence1", "sentence2"]
    assert r.json()["labels"] == ["0", "1", "2"]


def test_upload_jsonl_with_explicit_columns(client: TestClient) -> None:
    rows = [{"body": f"row {i}", "y": i % 2, "id": i} for i in range(8)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = upload(client, data, "data.txt", format="jsonl", text_columns="body", label_column="y")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["columns"] == ["body", "y", "id"]
    assert body["labels"] == ["0", "1"]


BAD: list[tuple[str, bytes, str, str, int | None, str | None]] = [
    # name, content, filename, message part, line, column
    ("bad-utf8", GOOD_CSV.replace(b"example number 3", b"ex\xffmple"), "d.csv", "UTF-8", 5, None),
    ("empty-label", GOOD_CSV.replace(b"example number 2,neg", b"example number 2,"), "d.csv",
     "empty", 4, "label"),
    ("empty-text", GOOD_CSV.replace(b"example number 6,neg", b"  ,neg"), "d.csv", "empty", 8,
     "text"),
    ("field-count", GOOD_CSV.replace(b"example number 4,neg", b"a,b,neg"), "d.csv", "3 fields",
     6, None),
    ("no-label-column", GOOD_CSV.replace(b"text,label", b"text,tag"), "d.csv", "no such column",
     1, "label"),
    ("no-text-column", GOOD_CSV.replace(b"text,label", b"body,label"), "d.csv", "text_columns",
     None, None),
    ("too-few-rows", (HEADER + "".join(ROWS[:5])).encode(), "d.csv", "at least 8", None, None),
    ("one-label", (HEADER + "".join(f"t{i},x\n" for i in range(9))).encode(), "d.csv",
     "2 distinct labels", None, "label"),
    ("empty-file", b"", "d.csv", "empty", 1, None),
    ("dup-header", b"text,text,label\n" + b"a,b,c\n" * 9, "d.csv", "duplicate", 1, None),
    ("row-too-long", GOOD_CSV.replace(b"example number 5", b"x" * 150_000), "d.csv", "longer",
     7, None),
    ("bad-json", b'{"text": "a", "label": 1}\n{"text": oops}\n', "d.jsonl", "not valid JSON", 2,
     None),
    ("json-not-object", b'{"text": "a", "label": 1}\n[1, 2]\n', "d.jsonl", "JSON object", 2,
     None),
    ("json-nested", b'{"text": {"a": 1}, "label": 1}\n', "d.jsonl", "strings or numbers", 1,
     "text"),
    ("unknown-extension", GOOD_CSV, "d.xlsx", "format", None, None),
    ("label-too-long", GOOD_CSV.replace(b"example number 2,neg", b"t," + b"y" * 1001), "d.csv",
     "a label longer than 1000 characters", 4, "label"),
    ("too-many-label-values", (HEADER + "".join(f"t,{i}\n" for i in range(4001))).encode(),
     "d.csv", "more than 4000 distinct label values", 4002, "label"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "filename", "part", "line", "column"),
                         [b[1:] for b in BAD], ids=[b[0] for b in BAD])  # fmt: skip
def test_invalid_dataset_names_line_and_column(
    client: TestClient, db_session: Session, settings_env: Path, data: bytes, filename: str,
    part: str, line: int | None, column: str | None,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    body = invalid(upload(client, data, filename))
    assert part in body["detail"], body
    err = body["errors"][0]
    assert err["line"] == line, body
    assert err["column"] == column, body
    if line is not None:
        assert f"line {line}" in body["detail"]
    assert count_rows(db_session) == before
    assert stored_objects(settings_env / "artifacts") == []


def test_dataset_over_the_size_cap_is_413(make_client: MakeClient, db_session: Session) -> None:
    client = make_client(max_dataset_upload_bytes="100")
    r = upload(client, GOOD_CSV)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large"
    assert count_rows(db_session)["dataset"] == 0


def test_unknown_dataset_id_is_404(client: TestClient) -> None:
    r = client.get("/v1/datasets/nope")
    assert r.status_code == 404
    assert r.json()["code"] == "dataset_not_found"


def test_bad_format_field_is_a_validation_problem(client: TestClient) -> None:
    r = upload(client, GOOD_CSV, format="xlsx")
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert r.json()["field"] == "format"


def test_numeric_labels_are_one_class_per_value(client: TestClient) -> None:
    # `1`, `1.0` and ` 1` were three classes; numbers are compared by value, ordered by value.
    labels = ["1", "1.0", " 1", "0", "0.0", "10", "2", "2.00", "+1", "0"]
    data = (HEADER + "".join(f"row {i},{y}\n" for i, y in enumerate(labels))).encode()
    r = upload(client, data)
    assert r.status_code == 201, r.text
    assert r.json()["labels"] == ["0", "1", "2", "10"]
    rows = [{"text": f"row {i}", "label": y} for i, y in enumerate([1, 1.0, " 1", "1", 0, 0.0] * 2)]
    r = upload(client, "".join(json.dumps(x) + "\n" for x in rows).encode(), "d.jsonl")
    assert r.status_code == 201, r.text
    assert r.json()["labels"] == ["0", "1"]


def test_one_number_written_two_ways_among_text_labels_is_refused_by_name(
    client: TestClient, db_session: Session
) -> None:
    labels = ["neg", "pos", "1", "neg", "pos", "1.0", "neg", "pos", "1"]
    data = (HEADER + "".join(f"row {i},{y}\n" for i, y in enumerate(labels))).encode()
    before = count_rows(db_session)
    body = invalid(upload(client, data))
    assert "labels '1' and '1.0' are the same number written differently" in body["detail"]
    assert body["errors"][0]["column"] == "label" and body["field"] == "file"
    assert body["errors"][0]["line"] == 7, body  # where the second spelling first appears
    assert count_rows(db_session) == before


@pytest.mark.parametrize("texts", DEFAULT_TEXT_COLUMNS, ids="/".join)
def test_every_default_text_column_is_checked_for_empty_values(
    client: TestClient, texts: tuple[str, ...]
) -> None:
    """Whichever default text column(s) the upload falls back to, an empty value there is
    refused naming its line: the column chosen is a column scanned (one list serves both)."""
    header = ",".join([*texts, "label"])
    rows = [",".join([*(f"{c} {i}" for c in texts), str(i % 2)]) for i in range(10)]
    rows[4] = ",".join([*(f"{c} 4" for c in texts[:-1]), "", "0"])  # line 6: last text empty
    r = upload(client, "\n".join([header, *rows, ""]).encode())
    body = invalid(r)
    assert body["errors"][0]["line"] == 6 and body["errors"][0]["column"] == texts[-1], body
