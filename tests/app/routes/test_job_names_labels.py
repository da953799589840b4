"""Issue 18: a job's name and labels are taken at POST /v1/jobs, stored beside the spec (not in
it: the worker never sees them), and returned by every job response; bad ones are 422s
naming the field; the Idempotency-Key fingerprint of a request without them is unchanged."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import Job
from app.services.idempotency import json_sha256
from tests.app.routes.test_jobs import problem, spec

LABELS = {"team": "search", "exp.v2": "obert-80", "a_b-c": ""}


def test_name_and_labels_are_stored_and_returned_everywhere(
    client: TestClient, db_session: Session
) -> None:
    r = client.post("/v1/jobs", json={**spec(), "name": "nightly sst2 run", "labels": LABELS})
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["name"] == "nightly sst2 run"
    assert created["labels"] == LABELS
    assert "name" not in created["spec"] and "labels" not in created["spec"]
    row = db_session.get(Job, uuid.UUID(created["id"]))
    assert row is not None
    assert (row.name, row.labels) == ("nightly sst2 run", LABELS)
    assert "labels" not in row.spec and "name" not in row.spec  # what the worker reads
    got = client.get(f"/v1/jobs/{created['id']}").json()
    assert (got["name"], got["labels"]) == ("nightly sst2 run", LABELS)
    listed = client.get("/v1/jobs").json()["items"]
    assert [(j["name"], j["labels"]) for j in listed] == [("nightly sst2 run", LABELS)]
    canceled = client.post(f"/v1/jobs/{created['id']}/cancel").json()
    assert canceled["labels"] == LABELS


def test_without_them_a_job_has_no_name_and_no_labels(client: TestClient) -> None:
    body = client.post("/v1/jobs", json=spec()).json()
    assert body["name"] is None
    assert body["labels"] == {}


BAD = [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"name": "tab\there"}, "name"),
    ({"name": "line\nbreak"}, "name"),
    ({"name": 7}, "name"),
    ({"labels": {"Team": "x"}}, "labels"),  # uppercase
    ({"labels": {"-team": "x"}}, "labels"),  # starts with a dash
    ({"labels": {"team.": "x"}}, "labels"),  # ends with a dot
    ({"labels": {"a/b": "x"}}, "labels"),
    ({"labels": {"": "x"}}, "labels"),
    ({"labels": {"k" * 64: "x"}}, "labels"),
    ({"labels": {"team": "v" * 256}}, "labels"),
    ({"labels": {"team": "a\x00b"}}, "labels"),
    ({"labels": {"team": 3}}, "labels.team"),  # strings only
    ({"labels": ["team"]}, "labels"),
    ({"labels": {f"k{i}": "v" for i in range(33)}}, "labels"),
]


@pytest.mark.parametrize(("extra", "field"), BAD)
def test_bad_names_and_labels_are_422_naming_the_field(
    client: TestClient, db_session: Session, extra: dict[str, Any], field: str
) -> None:
    body = problem(client.post("/v1/jobs", json={**spec(), **extra}), 422, "validation_error")
    assert body["field"] == field, body


def test_the_longest_name_and_key_and_the_most_labels_are_accepted(client: TestClient) -> None:
    labels = {f"k{i}": "v" * 255 for i in range(31)} | {"k" * 63: ""}
    r = client.post("/v1/jobs", json={**spec(), "name": "n" * 255, "labels": labels})
    assert r.status_code == 202, r.text
    assert r.json()["labels"] == labels


def test_a_bad_label_names_its_key(client: TestClient) -> None:
    body = problem(
        client.post("/v1/jobs", json={**spec(), "labels": {"ok": "1", "Bad": "2"}}),
        422, "validation_error",
    )  # fmt: skip
    assert "'Bad'" in body["detail"]


def test_a_recipe_job_keeps_its_name_and_labels(client: TestClient) -> None:
    body = {"model": "minilm-l6", "dataset": {"name": "sst2"}, "recipe": "obert-80"}
    r = client.post("/v1/jobs", json={**body, "name": "r", "labels": {"k": "v"}})
    assert r.status_code == 202, r.text
    assert (r.json()["name"], r.json()["labels"]) == ("r", {"k": "v"})
    assert r.json()["spec"]["recipe"].startswith("obert-80@")


def test_idempotency_fingerprint_counts_name_and_labels_only_when_given(
    client: TestClient,
) -> None:
    """A key stored before names and labels existed still matches its request's retry; a
    retry that adds a label is a different request, not a replay."""
    plain = client.post("/v1/jobs", json=spec(), headers={"Idempotency-Key": "k-1"})
    assert plain.status_code == 202, plain.text
    again = client.post("/v1/jobs", json=spec(), headers={"Idempotency-Key": "k-1"})
    assert again.json()["id"] == plain.json()["id"]
    other = client.post(
        "/v1/jobs", json={**spec(), "labels": {"k": "v"}}, headers={"Idempotency-Key": "k-1"}
    )
    problem(other, 422, "idempotency_key_reused")


def test_fingerprint_without_name_or_labels_is_the_spec_s() -> None:
    from app.schemas.job_spec import JobSpec
    from app.schemas.job_submission import JobSubmission

    raw = spec()
    assert json_sha256(JobSubmission.model_validate(raw).fingerprint()) == json_sha256(
        JobSpec.model_validate(raw).model_dump(mode="json")
    )
    named = JobSubmission.model_validate({**raw, "name": "x"}).fingerprint()
    assert named["name"] == "x" and "labels" not in named
