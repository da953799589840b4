"""GET /v1/recipes, /v1/recipes/{name}, and job specs that name a recipe."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import Job
from tests.app.routes.test_jobs import problem

BASE = {"model": "minilm-l6", "dataset": {"name": "sst2"}}


def test_list_and_get(client: TestClient) -> None:
    body = client.get("/v1/recipes").json()
    names = [r["name"] for r in body["items"]]
    assert {"obert-80", "obert-90", "gmp-80", "gmp-90", "compound-3l-80-int8", "structured-2x",
            "structured-3x", "structured-2x-int8"} <= set(names)  # fmt: skip
    one = next(r for r in body["items"] if r["name"] == "obert-80")
    assert one["version"] == 2 and one["ref"] == "obert-80@2" and one["description"]
    assert one["spec"]["pruning"]["method"] == "obert"
    assert client.get("/v1/recipes/obert-80").json() == one
    assert client.get("/v1/recipes/obert-80@2").json() == one
    assert client.get("/v1/recipes/obert-80@1").json()["version"] == 1
    problem(client.get("/v1/recipes/nope"), 404, "recipe_not_found")


def test_submit_with_recipe_stores_the_resolved_spec(
    client: TestClient, db_session: Session
) -> None:
    r = client.post("/v1/jobs", json={**BASE, "recipe": "gmp-80", "pruning": {"sparsity": 0.75}})
    assert r.status_code == 202, r.text
    stored = r.json()["spec"]
    assert stored["recipe"] == "gmp-80@2"
    assert stored["pruning"]["method"] == "magnitude"
    assert stored["pruning"]["sparsity"] == 0.75
    assert stored["pruning"]["schedule"]["kind"] == "gradual"
    job = db_session.get(Job, uuid.UUID(r.json()["id"]))
    assert job is not None and job.spec == stored


def test_unknown_recipe_is_422_naming_the_field(client: TestClient) -> None:
    body = problem(client.post("/v1/jobs", json={**BASE, "recipe": "obert-99"}), 422,
                   "validation_error")  # fmt: skip
    assert body["field"] == "recipe"
    assert "unknown recipe" in body["detail"]


def test_the_structured_recipes_are_listed_with_their_options(client: TestClient) -> None:
    items = {r["name"]: r for r in client.get("/v1/recipes").json()["items"]}
    for name, speedup in (("structured-2x", 2.0), ("structured-3x", 3.0),
                          ("structured-2x-int8", 2.0)):  # fmt: skip
        one = items[name]  # the latest: version 4, at least the target, against the stream
        assert one["ref"] == f"{name}@4" and "speedup" in one["description"]
        structured = {"target_speedup": speedup, "steps": 3}
        assert one["spec"]["pruning"] == {
            "method": "structured",
            "structured": {**structured, "normalize_loss_by": "stream", "target_band": "at_least"},
        }
        assert one["spec"]["training"]["learning_rate"] == 1.5e-4
        assert client.get(f"/v1/recipes/{name}@4").json() == one
        third = client.get(f"/v1/recipes/{name}@3").json()  # earlier ones stay for pinned jobs
        assert third["spec"]["pruning"]["structured"] == {
            **structured, "normalize_loss_by": "stream", "target_band": "around",
        }  # fmt: skip
        second = client.get(f"/v1/recipes/{name}@2").json()
        assert second["spec"]["pruning"]["structured"] == {
            **structured, "normalize_loss_by": "output", "target_band": "around",
        }  # fmt: skip
        assert second["spec"]["training"]["learning_rate"] == 1.5e-4
        first = client.get(f"/v1/recipes/{name}@1").json()
        assert first["spec"]["training"]["learning_rate"] == 5e-5
        assert first["spec"]["pruning"] == second["spec"]["pruning"]
    assert items["structured-2x-int8"]["spec"]["quantization"] == {"method": "qat_int8"}
    assert "quantization" not in items["structured-2x"]["spec"]


def test_submit_with_a_structured_recipe_stores_it_pinned(client: TestClient) -> None:
    pruning = {"structured": {"target_speedup": 2.5}}
    r = client.post("/v1/jobs", json={**BASE, "recipe": "structured-2x-int8", "pruning": pruning})
    assert r.status_code == 202, r.text
    stored = r.json()["spec"]
    assert stored["recipe"] == "structured-2x-int8@4"
    assert stored["pruning"]["method"] == "structured"
    assert stored["pruning"]["structured"]["target_speedup"] == 2.5
    assert stored["pruning"]["structured"]["steps"] == 3
    assert stored["quantization"]["method"] == "qat_int8"
