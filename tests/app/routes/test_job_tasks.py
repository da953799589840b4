"""POST /v1/jobs checks a job's task: the data set must serve it (task_mismatch), an uploaded
model's trained head must fit it and the data set's classes (head_mismatch), and the dataset
options of another task are refused by name (invalid_option). Each refusal is a 422 naming
the field, and nothing is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.catalog import CONLL2003_TAGS
from tests.app.conftest import count_rows
from tests.app.routes.test_dataset_tasks import STS_CSV, conll, squad_json
from tests.factories.archives import bert_config, model_files, zip_bytes


@pytest.fixture
def data_dir(settings_env: Path) -> Path:
    """The test's DATA_DIR (see tests/app/conftest.py), with tiny stsb, conll2003 and squad
    train and dev files."""
    root = settings_env / "data"
    for name in ("stsb", "conll2003", "squad"):
        (root / name).mkdir(parents=True, exist_ok=True)
    sts = STS_CSV.replace(",", "\t").replace('"', "")
    for f in ("train.tsv", "dev.tsv"):
        (root / "stsb" / f).write_text(sts)
    for f in ("train.txt", "dev.txt"):
        (root / "conll2003" / f).write_bytes(conll())
    for f in ("train.json", "dev.json"):
        (root / "squad" / f).write_bytes(squad_json())
    return root


def post(client: TestClient, **spec: Any) -> Any:
    return client.post("/v1/jobs", json={"model": "minilm-l6", **spec})


def refused(r: Any, db_session: Session, before: dict[str, int], code: str, field: str) -> str:
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["code"], body["field"]) == (code, field), body
    assert count_rows(db_session) == before
    detail: str = body["detail"]
    return detail


def upload_model(client: TestClient, **config: Any) -> str:
    """An uploaded tiny BERT whose config.json has these fields (None removes one)."""
    cfg = {k: v for k, v in bert_config(**config).items() if v is not None}
    r = client.post("/v1/models", files={"file": ("m.zip", zip_bytes(model_files(config=cfg)))})
    assert r.status_code == 201, r.text
    model_id: str = r.json()["id"]
    return model_id


def labels(n: int) -> dict[str, Any]:
    return named([f"L{i}" for i in range(n)])


def named(names: list[str]) -> dict[str, Any]:
    return {"id2label": {str(i): n for i, n in enumerate(names)},
            "label2id": {n: i for i, n in enumerate(names)}}  # fmt: skip


# --- the data set serves the task --------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "dataset", "serves"),
    [("regression", "tweets", "sequence_classification"),
     ("token_classification", "sst2", "sequence_classification"),
     ("question_answering", "conll2003", "token_classification"),
     ("sequence_classification", "stsb", "regression"),
     ("regression", "squad", "question_answering")],
)  # fmt: skip
def test_a_builtin_data_set_of_another_task_is_task_mismatch(
    client: TestClient, db_session: Session, task: str, dataset: str, serves: str
) -> None:
    before = count_rows(db_session)
    detail = refused(post(client, task=task, dataset={"name": dataset}), db_session, before,
                     "task_mismatch", "task")  # fmt: skip
    assert detail == (f"data set {dataset!r} serves the {serves} task; this job's task is "
                      f"{task}")  # fmt: skip


@pytest.mark.parametrize(
    ("task", "dataset"),
    [("regression", "stsb"), ("token_classification", "conll2003"),
     ("question_answering", "squad")],
)  # fmt: skip
def test_each_builtin_data_set_serves_its_task_once_installed(
    make_client: Any, db_session: Session, settings_env: Path, task: str, dataset: str
) -> None:
    client = make_client()
    before = count_rows(db_session)
    refused(post(client, task=task, dataset={"name": dataset}), db_session, before,
            "dataset_unavailable", "dataset.name")  # fmt: skip
    (settings_env / "data" / dataset).mkdir()
    files = {
        "stsb": ("train.tsv", STS_CSV.replace(",", "\t").encode()),
        "conll2003": ("train.txt", conll()),
        "squad": ("train.json", squad_json()),
    }
    name, content = files[dataset]
    (settings_env / "data" / dataset / name).write_bytes(content)
    r = post(client, task=task, dataset={"name": dataset})
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["task"] == task


# --- the model's trained head ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("architecture", "task", "dataset"),
    [("BertForQuestionAnswering", "sequence_classification", "tweets"),
     ("BertForTokenClassification", "sequence_classification", "tweets"),
     ("BertForSequenceClassification", "token_classification", "conll2003"),
     ("BertForSequenceClassification", "question_answering", "squad"),
     ("BertForQuestionAnswering", "regression", "stsb"),
     ("BertForTokenClassification", "question_answering", "squad")],
)  # fmt: skip
def test_a_trained_head_of_another_task_is_head_mismatch(
    client: TestClient, db_session: Session, data_dir: Path, architecture: str, task: str,
    dataset: str,
) -> None:  # fmt: skip
    model = upload_model(client, architectures=[architecture], **labels(3))
    before = count_rows(db_session)
    detail = refused(post(client, task=task, model=model, dataset={"name": dataset}),
                     db_session, before, "head_mismatch", "model")  # fmt: skip
    assert detail.startswith(f"the model is a {architecture}: its trained head does not fit a "
                             f"{task} job")  # fmt: skip


@pytest.mark.parametrize(
    ("outputs", "task", "dataset", "needed"),
    [(2, "sequence_classification", "tweets", "data set 'tweets' has 3 classes"),
     (3, "sequence_classification", "agnews", "data set 'agnews' has 4 classes"),
     (5, "token_classification", "conll2003", "data set 'conll2003' has 9 tags"),
     (2, "regression", "stsb", "a regression head has 1")],
)  # fmt: skip
def test_a_head_of_another_size_is_head_mismatch(
    client: TestClient, db_session: Session, data_dir: Path, outputs: int, task: str,
    dataset: str, needed: str,
) -> None:  # fmt: skip
    (data_dir / "agnews").mkdir()
    (data_dir / "agnews" / "train.tsv").write_text("text\tlabel\nnews\tWorld\n")
    suffix = "TokenClassification" if task == "token_classification" else "SequenceClassification"
    model = upload_model(client, architectures=[f"BertFor{suffix}"], **labels(outputs))
    before = count_rows(db_session)
    detail = refused(post(client, task=task, model=model, dataset={"name": dataset}),
                     db_session, before, "head_mismatch", "model")  # fmt: skip
    assert detail == f"the model's trained head (BertFor{suffix}) has {outputs} outputs; {needed}"


@pytest.mark.parametrize(
    ("config", "task", "dataset"),
    [({"architectures": ["BertForSequenceClassification"], **labels(3)},
      "sequence_classification", "tweets"),
     ({"architectures": ["BertForTokenClassification"], **named(list(CONLL2003_TAGS))},
      "token_classification", "conll2003"),
     ({"architectures": ["BertForSequenceClassification"], "num_labels": 1, "id2label": None,
       "label2id": None}, "regression", "stsb"),
     ({"architectures": ["BertForQuestionAnswering"]}, "question_answering", "squad"),
     ({"architectures": ["BertModel"]}, "token_classification", "conll2003"),
     ({"architectures": ["BertForMaskedLM"]}, "question_answering", "squad"),
     ({"architectures": None}, "regression", "stsb")],
    ids=["classes", "tags", "regression", "qa", "no-head", "mlm", "no-architectures"],
)  # fmt: skip
def test_a_fitting_head_or_none_is_accepted(
    client: TestClient, data_dir: Path, config: dict[str, Any], task: str, dataset: str
) -> None:
    model = upload_model(client, **config)
    r = post(client, task=task, model=model, dataset={"name": dataset})
    assert r.status_code == 202, r.text


def test_an_uploaded_data_sets_classes_count_for_the_head(
    client: TestClient, db_session: Session
) -> None:
    data = b"text,label\n" + b"".join(b"row %d,%s\n" % (i, b"abc"[i % 3 : i % 3 + 1])
                                      for i in range(9))  # fmt: skip
    dataset = client.post("/v1/datasets", files={"file": ("d.csv", data)}).json()["id"]
    two = upload_model(client, **labels(2))
    before = count_rows(db_session)
    detail = refused(post(client, model=two, dataset={"name": dataset}), db_session, before,
                     "head_mismatch", "model")  # fmt: skip
    assert detail.endswith(f"has 2 outputs; data set {dataset!r} has 3 classes")
    assert post(client, model=upload_model(client, **labels(3)),
                dataset={"name": dataset}).status_code == 202  # fmt: skip


# --- task options ----------------------------------------------------------------------------


OPTIONS = [("doc_stride", 64, "question_answering"),
           ("max_answer_length", 20, "question_answering"),
           ("tag_column", "4", "token_classification"),
           ("tag_scheme", "IOB1", "token_classification"),
           ("score_column", "score", "regression"),
           ("score_range", [0.0, 5.0], "regression")]  # fmt: skip


@pytest.mark.parametrize(("option", "value", "task"), OPTIONS, ids=[o[0] for o in OPTIONS])
def test_another_tasks_dataset_option_is_refused_naming_it(
    client: TestClient, db_session: Session, option: str, value: Any, task: str
) -> None:
    before = count_rows(db_session)
    r = post(client, dataset={"name": "tweets", option: value})
    detail = refused(r, db_session, before, "invalid_option", f"dataset.{option}")
    assert detail == (f"dataset.{option} is a {task} option; this job's task is "
                      "sequence_classification")  # fmt: skip


OWN = [o for o in OPTIONS if o[0] != "tag_column"]  # a built-in reads its own tag column


@pytest.mark.parametrize(("option", "value", "task"), OWN, ids=[o[0] for o in OWN])
def test_a_tasks_own_dataset_option_is_accepted(
    client: TestClient, data_dir: Path, option: str, value: Any, task: str
) -> None:
    name = {"question_answering": "squad", "token_classification": "conll2003",
            "regression": "stsb"}[task]  # fmt: skip
    r = post(client, task=task, dataset={"name": name, option: value})
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["dataset"][option] == value


def test_score_range_must_hold_an_uploaded_data_sets_scores(
    client: TestClient, db_session: Session
) -> None:
    dataset = client.post("/v1/datasets", files={"file": ("s.csv", STS_CSV.encode())},
                          data={"task": "regression"}).json()["id"]  # fmt: skip
    before = count_rows(db_session)
    spec: dict[str, Any] = {
        "task": "regression",
        "dataset": {"name": dataset, "score_range": [0.0, 4.5]},
    }
    detail = refused(post(client, **spec), db_session, before, "invalid_option",
                     "dataset.score_range")  # fmt: skip
    assert detail == "the data set's scores run from 0 to 5, outside score_range [0, 4.5]"
    spec["dataset"]["score_range"] = [-1.0, 5.0]
    assert post(client, **spec).status_code == 202
    bad_column = {"task": "regression", "dataset": {"name": dataset, "score_column": "grade"}}
    refused(post(client, **bad_column), db_session, count_rows(db_session), "unknown_column",
            "dataset.score_column")  # fmt: skip


def test_a_token_head_must_label_the_tags_in_their_order(
    client: TestClient, db_session: Session, data_dir: Path
) -> None:
    swapped = [CONLL2003_TAGS[0], *CONLL2003_TAGS[7:], *CONLL2003_TAGS[1:7]]  # PER first
    generic = [f"LABEL_{i}" for i in range(9)]  # cannot be checked: the worker refuses it too
    for names in (swapped, generic):
        model = upload_model(client, architectures=["BertForTokenClassification"], **named(names))
        before = count_rows(db_session)
        detail = refused(post(client, task="token_classification", model=model,
                              dataset={"name": "conll2003"}),
                         db_session, before, "head_mismatch", "model")  # fmt: skip
        assert "has the tags ['O', 'B-LOC'" in detail


def test_a_one_logit_classifier_is_no_regression_head(
    client: TestClient, db_session: Session, data_dir: Path
) -> None:
    model = upload_model(client, architectures=["BertForSequenceClassification"],
                         problem_type="single_label_classification", **labels(1))  # fmt: skip
    before = count_rows(db_session)
    detail = refused(post(client, task="regression", model=model, dataset={"name": "stsb"}),
                     db_session, before, "head_mismatch", "model")  # fmt: skip
    assert "single_label_classification classifier" in detail


@pytest.mark.parametrize(
    ("task", "dataset", "option", "value"),
    [("question_answering", "squad", "text_columns", ["question"]),
     ("token_classification", "conll2003", "label_column", "ner"),
     ("token_classification", "conll2003", "tag_column", "4")],
)  # fmt: skip
def test_column_options_a_data_set_cannot_honour_are_refused(
    client: TestClient, db_session: Session, data_dir: Path, task: str, dataset: str,
    option: str, value: Any,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    r = post(client, task=task, dataset={"name": dataset, option: value})
    refused(r, db_session, before, "invalid_option", f"dataset.{option}")


def test_an_uploaded_tag_set_is_read_from_its_recorded_tag_column(client: TestClient) -> None:
    from tests.app.routes.test_dataset_tasks import upload

    r = upload(client, conll(), "d.conll", task="token_classification")
    assert r.status_code == 201, r.text
    uploaded = r.json()
    recorded = uploaded["label_column"]
    ok = post(client, task="token_classification",
              dataset={"name": uploaded["id"], "tag_column": recorded})  # fmt: skip
    assert ok.status_code == 202, ok.text
    other = post(client, task="token_classification",
                 dataset={"name": uploaded["id"], "tag_column": "1"})  # fmt: skip
    assert other.status_code == 422 and other.json()["field"] == "dataset.tag_column"
