from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import Job
from tests.app.conftest import count_rows

SPEC: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {"name": "tweets"},
    "pruning": {"method": "magnitude", "sparsity": 0.5},
}


def spec(**changes: Any) -> dict[str, Any]:
    """changes use dotted paths: spec(**{"pruning.sparsity": 1.5}); None deletes a key."""
    out = copy.deepcopy(SPEC)
    for path, value in changes.items():
        node = out
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return out


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def test_submit_returns_202_location_and_job(client: TestClient, db_session: Session) -> None:
    r = client.post("/v1/jobs", json=spec(webhook_url="https://example.com/hook"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/jobs/{body['id']}"
    assert body["status"] == "queued"
    assert body["progress"] == 0.0
    assert body["error"] is None
    assert body["spec"]["pruning"]["sparsity"] == 0.5
    assert body["spec"]["training"]["batch_size"] == 16  # defaults are stored
    assert body["links"] == {
        "self": f"/v1/jobs/{body['id']}",
        "artifacts": f"/v1/jobs/{body['id']}/artifacts",
        "events": f"/v1/jobs/{body['id']}/events",
    }
    job = db_session.get(Job, uuid.UUID(body["id"]))
    assert job is not None
    assert job.webhook_url == "https://example.com/hook"
    assert job.dispatched_at is not None  # the filesystem broker took it
    assert [(e.kind, e.status) for e in job.events] == [("status", "queued")]
    got = client.get(f"/v1/jobs/{body['id']}").json()
    assert got["id"] == body["id"] and got["status"] == "queued"


INVALID = [
    ({"pruning.sparsity": 1.5}, "pruning.sparsity"),
    ({"pruning.sparsity": -0.1}, "pruning.sparsity"),
    ({"pruning.sparsity": "half"}, "pruning.sparsity"),
    ({"pruning.method": "random"}, "pruning.method"),
    ({"pruning.structure": "block7"}, "pruning.structure"),
    ({"pruning.schedule": {"kind": "gradual"}}, "pruning.schedule"),
    ({"pruning.schedule": {"kind": "gradual", "epochs": 1, "steps": 10}}, "pruning.schedule"),
    ({"pruning.schedule": {"kind": "sometimes"}}, "pruning.schedule"),
    ({"pruning.schedule": {"kind": "gradual", "epochs": -1}}, "pruning.schedule.epochs"),
    ({"pruning.schedule": {"kind": "oneshot", "steps": 3}}, "pruning.schedule.steps"),
    ({"pruning.obert": {"num_grads": 8}}, "pruning.obert"),
    ({"pruning.structured": {"target_speedup": 2.0}}, "pruning.structured"),
    (
        {"pruning.method": "structured", "pruning.structured": {"target_speedup": 1.0}},
        "pruning.structured.target_speedup",
    ),
    (
        {"pruning.method": "structured", "pruning.structured": {"runtime": "tensorrt"}},
        "pruning.structured.runtime",
    ),
    (
        {"pruning.method": "structured", "pruning.structured": {"steps": 0}},
        "pruning.structured.steps",
    ),
    (
        {"pruning.method": "structured", "pruning.schedule": {"kind": "gradual", "epochs": 1}},
        "pruning.schedule",
    ),
    ({"pruning.method": "structured", "pruning.obert": {"num_grads": 8}}, "pruning.obert"),
    ({"pruning.schedule": {"kind": "gradual", "steps": 9, "init_sparsity": 0.9}}, "pruning"),
    ({"unknown_field": 1}, "unknown_field"),
    ({"dataset.colour": "red"}, "dataset.colour"),
    ({"dataset.max_length": 4}, "dataset.max_length"),
    ({"dataset.max_length": 4096}, "dataset.max_length"),
    ({"dataset.text_columns": []}, "dataset.text_columns"),
    ({"dataset.text_columns": ["a", "b", "c"]}, "dataset.text_columns"),
    ({"dataset.max_train_examples": 2}, "dataset.max_train_examples"),
    ({"dataset.name": ""}, "dataset.name"),
    ({"dataset": None}, "dataset"),
    ({"model": None}, "model"),
    ({"model": ""}, "model"),
    ({"model": "x" * 65}, "model"),
    ({"training.learning_rate": 0}, "training.learning_rate"),
    ({"training.batch_size": 0}, "training.batch_size"),
    ({"training.epochs": 1000}, "training.epochs"),
    ({"training.finetune_dense": "sometimes"}, "training.finetune_dense"),
    ({"distillation.temperature": 0}, "distillation.temperature"),
    ({"distillation.hardness": 2}, "distillation.hardness"),
    ({"quantization.method": "int4"}, "quantization.method"),
    ({"layers": {"keep": 0}}, "layers.keep"),
    ({"layers": {}}, "layers.keep"),
    ({"webhook_url": "not a url"}, "webhook_url"),
]


@pytest.mark.parametrize(("changes", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_spec_field_is_422_naming_it(
    client: TestClient, db_session: Session, changes: dict[str, Any], field: str
) -> None:
    before = count_rows(db_session)
    body = problem(client.post("/v1/jobs", json=spec(**changes)), 422, "validation_error")
    assert field in [e["field"] for e in body["errors"]], body
    assert field in body["detail"]
    assert count_rows(db_session) == before


def test_a_structured_job_is_accepted_and_stored_with_its_options(
    client: TestClient, db_session: Session
) -> None:
    body = spec(**{"pruning.method": "structured", "pruning.sparsity": None,
                   "pruning.structured": {"target_speedup": 3.0, "steps": 2},
                   "layers": {"keep": 4}, "quantization.method": "qat_int8"})  # fmt: skip
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    stored = r.json()["spec"]["pruning"]
    assert stored["method"] == "structured"
    assert stored["structured"] == {"target_speedup": 3.0, "runtime": "onnxruntime-cpu",
                                    "precision": "fp32", "steps": 2,
                                    "calibration_batches": 16, "damp": 0.01,
                                    "normalize_loss_by": "stream", "target_band": "at_least",
                                    "latency_batch_size": 1}  # fmt: skip
    job = db_session.get(Job, uuid.UUID(r.json()["id"]))
    assert job is not None and job.spec["pruning"] == stored
    # without options: the defaults, stored as None (the worker reads StructuredSpec())
    r = client.post("/v1/jobs", json=spec(**{"pruning.method": "structured"}))
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["pruning"]["structured"] is None


def test_a_gradual_schedule_with_structured_says_to_use_its_steps(client: TestClient) -> None:
    changes = {"pruning.method": "structured",
               "pruning.schedule": {"kind": "gradual", "epochs": 1}}  # fmt: skip
    body = problem(client.post("/v1/jobs", json=spec(**changes)), 422, "validation_error")
    assert body["field"] == "pruning.schedule"
    assert "pruning.structured.steps" in body["detail"]


def test_body_that_is_not_json_is_a_validation_problem(client: TestClient) -> None:
    r = client.post("/v1/jobs", content=b"{nope", headers={"content-type": "application/json"})
    problem(r, 422, "validation_error")


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"model": "bert-huge"}, "model_not_found", "model"),
        ({"model": str(uuid.uuid4())}, "model_not_found", "model"),
        ({"dataset.name": "imdb"}, "dataset_not_found", "dataset.name"),
        ({"dataset.name": str(uuid.uuid4())}, "dataset_not_found", "dataset.name"),
    ],
)
def test_unknown_model_or_dataset_is_404(
    client: TestClient, db_session: Session, changes: dict[str, Any], code: str, field: str
) -> None:
    before = count_rows(db_session)
    body = problem(client.post("/v1/jobs", json=spec(**changes)), 404, code)
    assert body["field"] == field
    assert count_rows(db_session) == before


def test_builtin_dataset_missing_from_data_dir_is_422(
    client: TestClient, db_session: Session
) -> None:
    before = count_rows(db_session)
    body = problem(
        client.post("/v1/jobs", json=spec(**{"dataset.name": "agnews"})), 422, "dataset_unavailable"
    )
    assert body["field"] == "dataset.name"
    assert count_rows(db_session) == before
    # sst2 is installed in the test data dir.
    assert client.post("/v1/jobs", json=spec(**{"dataset.name": "sst2"})).status_code == 202


def test_malformed_or_unknown_job_id_is_404(client: TestClient) -> None:
    problem(client.get("/v1/jobs/not-a-uuid"), 404, "job_not_found")
    problem(client.get(f"/v1/jobs/{uuid.uuid4()}"), 404, "job_not_found")
    problem(client.get("/v1/jobs/nope/events"), 404, "job_not_found")
    problem(client.post("/v1/jobs/nope/cancel"), 404, "job_not_found")


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    problem(client.get("/v1/nothing-here"), 404, "not_found")
    problem(client.delete("/v1/jobs"), 405, "method_not_allowed")


def _submit(client: TestClient) -> str:
    r = client.post("/v1/jobs", json=SPEC)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_pagination_pages_newest_first_without_duplicates(client: TestClient) -> None:
    ids = [_submit(client) for _ in range(7)]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if token:
            params["page_token"] = token
        body = client.get("/v1/jobs", params=params).json()
        pages += 1
        seen += [j["id"] for j in body["items"]]
        token = body["next_page_token"]
        if token is None:
            break
    assert pages == 3
    assert seen == list(reversed(ids))


def test_status_filter_and_cancel_of_queued_job(client: TestClient, db_session: Session) -> None:
    ids = [_submit(client) for _ in range(4)]
    r = client.post(f"/v1/jobs/{ids[1]}/cancel")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "canceled"
    assert body["finished_at"] is not None
    canceled = client.get("/v1/jobs", params={"status": "canceled"}).json()["items"]
    assert [j["id"] for j in canceled] == [ids[1]]
    queued = client.get("/v1/jobs", params={"status": "queued", "limit": 2}).json()
    assert [j["id"] for j in queued["items"]] == [ids[3], ids[2]]
    nxt = client.get(
        "/v1/jobs", params={"status": "queued", "limit": 2, "page_token": queued["next_page_token"]}
    ).json()
    assert [j["id"] for j in nxt["items"]] == [ids[0]]
    assert nxt["next_page_token"] is None
    events = client.get(f"/v1/jobs/{ids[1]}/events").json()["items"]
    assert [(e["kind"], e["status"]) for e in events] == [
        ("status", "queued"),
        ("status", "canceled"),
    ]
    after = client.get(f"/v1/jobs/{ids[1]}/events", params={"after": events[0]["id"]}).json()
    assert [e["id"] for e in after["items"]] == [events[1]["id"]]
    problem(client.post(f"/v1/jobs/{ids[1]}/cancel"), 409, "job_finished")


def test_cancel_of_running_job_requests_a_stop(client: TestClient, db_session: Session) -> None:
    job_id = _submit(client)
    job = db_session.get(Job, uuid.UUID(job_id))
    assert job is not None
    job.status = "running"
    db_session.flush()
    r = client.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "running"
    assert r.json()["cancel_requested"] is True
    db_session.refresh(job)
    assert job.cancel_requested is True


@pytest.mark.parametrize(
    "params",
    [{"page_token": "!!!"}, {"page_token": "bm90LWpzb24"}, {"page_token": "e30"}],
)
def test_bad_page_token_is_422(client: TestClient, params: dict[str, str]) -> None:
    body = problem(client.get("/v1/jobs", params=params), 422, "invalid_page_token")
    assert body["field"] == "page_token"


@pytest.mark.parametrize(("params", "field"), [({"limit": 0}, "limit"), ({"limit": 201}, "limit"),
                                                ({"status": "sleeping"}, "status")])  # fmt: skip
def test_bad_list_parameters_are_422(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    body = problem(client.get("/v1/jobs", params=params), 422, "validation_error")
    assert body["field"] == field


# Issue 14: strict JSON types, the webhook URL's column, and the job's estimated cost.
STRICT = [
    ({"training.batch_size": "2"}, "training.batch_size"),
    ({"training.batch_size": True}, "training.batch_size"),
    ({"training.batch_size": 2.0}, "training.batch_size"),
    ({"training.seed": False}, "training.seed"),
    ({"layers": {"keep": "2"}}, "layers.keep"),
    ({"pruning.sparsity": "0.5"}, "pruning.sparsity"),
    ({"pruning.sparsity": True}, "pruning.sparsity"),
    ({"pruning.obert": {"num_grads": 8.0}, "pruning.method": "obert"}, "pruning.obert.num_grads"),
    ({"distillation.enabled": 1}, "distillation.enabled"),
    ({"distillation.enabled": "true"}, "distillation.enabled"),
    ({"dataset.max_length": "64"}, "dataset.max_length"),
    ({"dataset.name": 5}, "dataset.name"),
    ({"pruning.schedule": {"kind": "gradual", "steps": "10"}}, "pruning.schedule.steps"),
]


@pytest.mark.parametrize(("changes", "field"), STRICT, ids=[f"{f}={c}" for c, f in STRICT])
def test_loose_json_types_are_422_naming_the_field(
    client: TestClient, db_session: Session, changes: dict[str, Any], field: str
) -> None:
    before = count_rows(db_session)
    body = problem(client.post("/v1/jobs", json=spec(**changes)), 422, "validation_error")
    assert body["field"] == field, body
    assert count_rows(db_session) == before


def test_integers_are_still_numbers(client: TestClient) -> None:
    r = client.post("/v1/jobs", json=spec(**{"pruning.sparsity": 0, "training.epochs": 1,
                                             "distillation.temperature": 2}))  # fmt: skip
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["training"]["epochs"] == 1.0


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/" + "a" * (2049 - len("https://example.com/")),  # 2,049 characters
        "https://example.com/" + "\u00e9" * 400,  # 420 sent, 2,420 once percent-encoded
    ],
    ids=["2049-chars", "expands-when-encoded"],
)
def test_webhook_url_longer_than_its_column_is_422(
    client: TestClient, db_session: Session, url: str
) -> None:
    before = count_rows(db_session)
    body = problem(client.post("/v1/jobs", json=spec(webhook_url=url)), 422, "validation_error")
    assert body["field"] == "webhook_url" and "2048" in body["detail"], body
    assert count_rows(db_session) == before
    ok = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert client.post("/v1/jobs", json=spec(webhook_url=ok)).status_code == 202


HOSTILE: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {"name": "tweets", "max_length": 512},
    "pruning": {"method": "obert", "sparsity": 0.9, "obert": {"num_grads": 65_536}},
    "training": {"batch_size": 1024, "epochs": 100, "recovery_epochs": 100},
}


def test_a_job_over_the_workers_memory_budget_is_422(
    client: TestClient, db_session: Session
) -> None:
    before = count_rows(db_session)
    body = problem(client.post("/v1/jobs", json=HOSTILE), 422, "memory_budget_exceeded")
    assert body["field"] == "training.batch_size"
    detail = body["detail"]
    assert "estimated" in detail and "8.00 GiB" in detail and "8589934592 bytes" in detail
    assert "batch 1024 x length 512" in detail and "lower training.batch_size" in detail
    assert count_rows(db_session) == before


def test_a_job_over_the_time_limit_is_422(client: TestClient, db_session: Session) -> None:
    body = {**HOSTILE, "training": {"recovery_epochs": 100}}
    body["dataset"] = {"name": "tweets"}
    got = problem(client.post("/v1/jobs", json=body), 422, "time_limit_exceeded")
    assert got["field"] == "training.recovery_epochs"
    assert "43,200 s" in got["detail"] and "JOB_TIME_LIMIT_S" in got["detail"]


def test_the_time_limit_is_the_settings(make_client: Any) -> None:
    client = make_client(job_time_limit_s="60")
    got = problem(client.post("/v1/jobs", json=SPEC), 422, "time_limit_exceeded")
    assert "60 s" in got["detail"]


@pytest.mark.parametrize("recipe", ["obert-80", "obert-90", "obert-90@2", "gmp-80", "gmp-90",
                                    "compound-3l-80-int8", "compound-3l-80-int8@2",
                                    "structured-2x", "structured-3x",
                                    "structured-2x-int8"])  # fmt: skip
def test_builtin_recipes_on_the_full_tweets_data_are_accepted(
    client: TestClient, recipe: str
) -> None:
    r = client.post("/v1/jobs", json={"model": "minilm-l6", "dataset": {"name": "tweets"},
                                      "recipe": recipe})  # fmt: skip
    assert r.status_code == 202, r.text
