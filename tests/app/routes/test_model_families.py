"""Uploads of every family in the architecture table are accepted and checked with the
family's keys, tokenizer files and weights; any other architecture is refused and nothing is
kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.architectures import ARCHITECTURES
from tests.app.conftest import count_rows, stored_objects
from tests.factories.archives import (
    FAMILIES,
    FAMILY_CONFIGS,
    family_config,
    model_files,
    num_parameters,
    targz_bytes,
    zip_bytes,
)


def upload(client: TestClient, data: bytes, filename: str = "model.zip") -> Any:
    return client.post("/v1/models", files={"file": (filename, data)})


def refused_and_nothing_kept(
    client: TestClient, db_session: Session, settings_env: Path, data: bytes, code: str
) -> str:
    before = count_rows(db_session)
    r = upload(client, data)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert (body["code"], body["field"]) == (code, "file"), body
    assert count_rows(db_session) == before
    assert stored_objects(settings_env / "artifacts") == []
    detail: str = body["detail"]
    return detail


@pytest.mark.parametrize("family", FAMILIES)
def test_a_model_of_every_family_is_accepted(
    client: TestClient, settings_env: Path, family: str
) -> None:
    r = upload(client, targz_bytes(model_files(family=family), prefix="m/"), "m.tar.gz")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["architecture"] == FAMILY_CONFIGS[family]["architectures"][0]
    assert body["num_parameters"] == num_parameters(family=family)
    assert body["num_labels"] == 2
    assert len(stored_objects(settings_env / "artifacts")) == 1


@pytest.mark.parametrize("family", ["roberta", "distilbert", "modernbert", "deberta-v2"])
def test_an_uploaded_family_model_serves_a_job_read_with_its_keys(
    client: TestClient, family: str
) -> None:
    model_id = upload(client, zip_bytes(model_files(family=family))).json()["id"]
    job = client.post("/v1/jobs", json={"model": model_id, "dataset": {"name": "sst2"}})
    assert job.status_code == 202, job.text
    # 2 layers, whatever the family calls them (DistilBERT: n_layers)
    deep = {"model": model_id, "dataset": {"name": "sst2"}, "layers": {"keep": 3}}
    r = client.post("/v1/jobs", json=deep)
    assert (r.status_code, r.json()["field"]) == (422, "layers.keep"), r.text
    assert "the model has 2 layers" in r.json()["detail"]


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "albert", "hidden_size": 8, "num_hidden_layers": 2,
         "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 8,
         "architectures": ["AlbertForSequenceClassification"]},
        {"model_type": "gpt2", "n_embd": 8, "n_layer": 2, "n_head": 2, "vocab_size": 8,
         "architectures": ["GPT2LMHeadModel"]},
        {"hidden_size": 8},  # no model_type
    ],
    ids=["albert", "gpt2", "no-model-type"],
)  # fmt: skip
def test_an_architecture_outside_the_table_is_refused_naming_the_supported(
    client: TestClient, db_session: Session, settings_env: Path, config: dict[str, Any]
) -> None:
    data = zip_bytes(model_files(config=config))
    detail = refused_and_nothing_kept(
        client, db_session, settings_env, data, "unsupported_architecture"
    )
    assert f"model_type {config.get('model_type')!r} is not supported" in detail
    assert all(a.display in detail for a in ARCHITECTURES.values()), detail


def test_a_class_outside_the_family_is_refused(
    client: TestClient, db_session: Session, settings_env: Path
) -> None:
    config = family_config("roberta", architectures=["BertForSequenceClassification"])
    detail = refused_and_nothing_kept(
        client, db_session, settings_env, zip_bytes(model_files(config=config)),
        "unsupported_architecture",
    )  # fmt: skip
    assert "'BertForSequenceClassification' for model_type 'roberta'" in detail
    assert "RobertaForSequenceClassification" in detail


@pytest.mark.parametrize(
    ("family", "accepted"),
    [("bert", "tokenizer.json, or vocab.txt"),
     ("roberta", "tokenizer.json, or vocab.json and merges.txt"),
     ("xlm-roberta", "tokenizer.json, or sentencepiece.bpe.model"),
     ("deberta-v2", "tokenizer.json, or spm.model"),
     ("modernbert", "needs tokenizer.json")],
)  # fmt: skip
def test_without_the_familys_tokenizer_files_the_upload_names_them(
    client: TestClient, db_session: Session, settings_env: Path, family: str, accepted: str
) -> None:
    data = zip_bytes(model_files(family=family, tokenizer=None))
    detail = refused_and_nothing_kept(client, db_session, settings_env, data, "invalid_model")
    assert f"a {ARCHITECTURES[family].display} model needs" in detail
    assert accepted in detail, detail


def test_another_familys_tokenizer_or_half_a_set_is_refused(
    client: TestClient, db_session: Session, settings_env: Path
) -> None:
    wordpiece = zip_bytes(model_files(family="roberta", tokenizer="vocab"))
    refused_and_nothing_kept(client, db_session, settings_env, wordpiece, "invalid_model")
    half = {k: v for k, v in model_files(family="roberta").items() if k != "merges.txt"}
    detail = refused_and_nothing_kept(
        client, db_session, settings_env, zip_bytes(half), "invalid_model"
    )
    assert "(merges.txt is missing)" in detail
    fast = zip_bytes(model_files(family="roberta", tokenizer="json"))
    assert upload(client, fast).status_code == 201


def test_a_familys_trained_head_is_held_to_the_job(client: TestClient) -> None:
    token = family_config("roberta", architectures=["RobertaForTokenClassification"])
    model_id = upload(client, zip_bytes(model_files(config=token))).json()["id"]
    r = client.post("/v1/jobs", json={"model": model_id, "dataset": {"name": "sst2"}})
    assert (r.status_code, r.json()["code"]) == (422, "head_mismatch"), r.text
    assert "needs a RobertaForSequenceClassification" in r.json()["detail"]
    assert "(RobertaModel, RobertaForMaskedLM: the job adds a new head)" in r.json()["detail"]
    three = family_config("distilbert", id2label={"0": "a", "1": "b", "2": "c"},
                          label2id={"a": 0, "b": 1, "c": 2})  # fmt: skip
    model_id = upload(client, zip_bytes(model_files(config=three))).json()["id"]
    r = client.post("/v1/jobs", json={"model": model_id, "dataset": {"name": "sst2"}})
    assert (r.status_code, r.json()["code"]) == (422, "head_mismatch"), r.text
    assert "(DistilBertForSequenceClassification) has 3 outputs" in r.json()["detail"]
