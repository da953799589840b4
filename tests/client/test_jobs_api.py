"""The client's job filters, deletions, dry runs and upload reads, against a real API server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from scalpel_client import ScalpelAPIError, ScalpelClient
from tests.client.server import Server, spec, tiny_dataset_csv, tiny_model_zip


def tag() -> str:
    """A label value no other test's jobs have (the server is shared)."""
    return uuid.uuid4().hex[:12]


def test_list_jobs_filters_map_to_the_query(client: ScalpelClient, tmp_path: Path) -> None:
    run = tag()
    model = client.upload_model(tiny_model_zip(tmp_path / "m.zip"))
    data = client.upload_dataset(tiny_dataset_csv(tmp_path / "d.csv"))
    on_upload = client.submit_job(spec(model=model["id"], dataset={"name": data["id"]}),
                                  labels={"run": run, "kind": "upload"})  # fmt: skip
    from_recipe = client.submit_job({"recipe": "obert-80", "model": "minilm-l6",
                                     "dataset": {"name": "tweets"}},
                                    name="r", labels={"run": run, "kind": "recipe"})  # fmt: skip
    plain = client.submit_job(spec(), labels={"run": run, "kind": "plain"})
    client.cancel_job(plain["id"])

    def ids(**filters: object) -> list[str]:
        return [j["id"] for j in client.list_jobs(labels={"run": run}, page_size=1, **filters)]

    assert ids() == [plain["id"], from_recipe["id"], on_upload["id"]]  # newest first
    assert ids(model=model["id"]) == [on_upload["id"]]
    assert ids(model=model["id"].upper()) == [on_upload["id"]]  # any spelling of the id
    assert ids(dataset=data["id"]) == [on_upload["id"]]
    assert ids(dataset="tweets") == [plain["id"], from_recipe["id"]]
    assert ids(recipe="obert-80") == [from_recipe["id"]]
    assert ids(recipe=from_recipe["spec"]["recipe"]) == [from_recipe["id"]]
    assert ids(status="canceled") == [plain["id"]]
    assert ids(status=["canceled", "queued"]) == [plain["id"], from_recipe["id"], on_upload["id"]]
    assert [j["id"] for j in client.list_jobs(labels={"run": run, "kind": "plain"})] == [
        plain["id"]
    ]
    assert ids(status="succeeded") == []
    assert from_recipe["name"] == "r" and from_recipe["labels"] == {"run": run, "kind": "recipe"}

    when = datetime.fromisoformat(from_recipe["created_at"])
    assert ids(created_after=when) == [plain["id"], from_recipe["id"]]  # inclusive
    assert ids(created_before=when) == [on_upload["id"]]  # exclusive
    assert ids(created_after=from_recipe["created_at"], created_before=when) == []
    later = (when + timedelta(days=1)).astimezone(UTC)
    assert ids(created_before=later.isoformat().replace("+00:00", "Z")) == ids()
    with pytest.raises(ValueError, match="time zone"):
        ids(created_after=datetime(2026, 1, 1))  # naive: refused before sending
    with pytest.raises(ScalpelAPIError) as err:
        ids(created_after="yesterday")
    assert (err.value.status, err.value.field) == (422, "created_after")


def test_delete_a_finished_job_not_an_active_one(client: ScalpelClient) -> None:
    job = client.submit_job(spec())
    with pytest.raises(ScalpelAPIError) as err:
        client.delete_job(job["id"])
    assert (err.value.status, err.value.code) == (409, "job_active")
    client.cancel_job(job["id"])
    assert client.delete_job(job["id"]) is None
    with pytest.raises(ScalpelAPIError) as err:
        client.get_job(job["id"])
    assert err.value.status == 404
    with pytest.raises(ScalpelAPIError) as err:
        client.delete_job(job["id"])
    assert (err.value.status, err.value.code) == (404, "job_not_found")


def test_get_and_delete_uploads(client: ScalpelClient, tmp_path: Path) -> None:
    model = client.upload_model(tiny_model_zip(tmp_path / "m.zip"), name="to-go")
    data = client.upload_dataset(tiny_dataset_csv(tmp_path / "d.csv"), name="data-to-go")
    assert client.get_model(model["id"]) == model
    assert client.get_dataset(data["id"])["name"] == "data-to-go"
    job = client.submit_job(spec(model=model["id"], dataset={"name": data["id"]}))
    with pytest.raises(ScalpelAPIError) as err:
        client.delete_model(model["id"])
    assert (err.value.status, err.value.code) == (409, "model_in_use")
    client.cancel_job(job["id"])  # a finished job keeps its record of them
    client.delete_model(model["id"])
    client.delete_dataset(data["id"])
    for read in (lambda: client.get_model(model["id"]), lambda: client.get_dataset(data["id"]),
                 lambda: client.delete_dataset(data["id"])):  # fmt: skip
        with pytest.raises(ScalpelAPIError) as err:
            read()
        assert err.value.status == 404


def test_dry_run_checks_and_estimates_without_a_job(server: Server) -> None:
    run = tag()
    seen: list[httpx.Request] = []
    http = httpx.Client(base_url=server.url, event_hooks={"request": [seen.append]})
    with ScalpelClient(server.url, server.api_key, http=http) as client:
        dry = client.submit_job(spec(), name="try", labels={"run": run}, dry_run=True)
        assert dry["dry_run"] is True and (dry["name"], dry["labels"]) == ("try", {"run": run})
        assert dry["spec"]["model"] == "minilm-l6" and dry["spec"]["pruning"]["sparsity"] == 0.5
        assert dry["spec"]["pruning"]["scope"] == "global"  # a default filled in
        assert "name" not in dry["spec"] and "labels" not in dry["spec"]
        memory, time = dry["memory_estimate"], dry["time_estimate"]
        assert memory is not None and memory["peak_bytes"] > 0 and memory["terms"]
        assert time is not None and time["seconds"] > 0 and time["steps"]
        assert seen[-1].url.params["dry_run"] == "true"
        assert "idempotency-key" not in seen[-1].headers
        assert list(client.list_jobs(labels={"run": run})) == []  # nothing was submitted
        with pytest.raises(ScalpelAPIError) as err:  # the submission's own checks
            client.submit_job(spec(pruning={"sparsity": 2.0}), dry_run=True)
        assert (err.value.status, err.value.field) == (422, "pruning.sparsity")
        job = client.submit_job(spec(), name="for real", labels={"run": run})
        assert "idempotency-key" in seen[-1].headers
        assert (job["name"], job["labels"]) == ("for real", {"run": run})
        assert [j["id"] for j in client.list_jobs(labels={"run": run})] == [job["id"]]
