"""ScalpelClient against a real API server process."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from scalpel_client import (
    DigestMismatchError,
    ScalpelAPIError,
    ScalpelClient,
    ScalpelTimeoutError,
)
from tests.client.server import Server, sha256, spec, tiny_dataset_csv, tiny_model_zip


def test_uploads_then_a_job_on_them(client: ScalpelClient, tmp_path: Path) -> None:
    model = client.upload_model(tiny_model_zip(tmp_path / "tiny.zip"), name="tiny")
    assert model["name"] == "tiny" and model["architecture"]
    dataset = client.upload_dataset(
        tiny_dataset_csv(tmp_path / "d.csv"), name="d", text_columns=["text"],
        label_column="label",
    )  # fmt: skip
    assert dataset["num_rows"] == 16 and dataset["text_columns"] == ["text"]
    job = client.submit_job(spec(model=model["id"], dataset={"name": dataset["id"]}))
    assert job["status"] == "queued" and job["spec"]["model"] == model["id"]
    assert model["id"] in {m["id"] for m in client.list_models()}
    assert dataset["id"] in {d["id"] for d in client.list_datasets()}


def test_upload_retry_with_the_same_key_is_the_same_model(
    client: ScalpelClient, tmp_path: Path
) -> None:
    path = tiny_model_zip(tmp_path / "tiny.zip")
    first = client.upload_model(path, idempotency_key="up-1")
    again = client.upload_model(path, idempotency_key="up-1")
    assert first["id"] == again["id"]


def test_submit_is_idempotent_with_a_key_and_distinct_without(client: ScalpelClient) -> None:
    first = client.submit_job(spec(), idempotency_key="job-key-1")
    retry = client.submit_job(spec(), idempotency_key="job-key-1")
    assert retry["id"] == first["id"]
    assert client.submit_job(spec())["id"] != client.submit_job(spec())["id"]
    with pytest.raises(ScalpelAPIError) as err:  # same key, another request
        client.submit_job(spec(pruning={"sparsity": 0.7}), idempotency_key="job-key-1")
    assert err.value.status == 422 and err.value.code == "idempotency_key_reused"


def test_list_jobs_follows_every_page(client: ScalpelClient) -> None:
    ids = {client.submit_job(spec())["id"] for _ in range(3)}
    listed = [j["id"] for j in client.list_jobs(page_size=1)]
    assert ids <= set(listed) and len(listed) == len(set(listed))
    assert ids <= {j["id"] for j in client.list_jobs(status="queued", page_size=2)}
    assert not ids & {j["id"] for j in client.list_jobs(status="succeeded")}


def test_cancel_and_wait(client: ScalpelClient) -> None:
    job = client.submit_job(spec())
    with pytest.raises(ScalpelTimeoutError):
        client.wait(job["id"], poll_interval=0.05, timeout=0.2)
    assert client.cancel_job(job["id"])["status"] == "canceled"
    seen: list[str] = []
    done = client.wait(job["id"], on_update=lambda j: seen.append(j["status"]), poll_interval=0.05)
    assert done["status"] == "canceled" and seen == ["canceled"]
    with pytest.raises(ScalpelAPIError) as err:
        client.cancel_job(job["id"])
    assert err.value.status == 409


def test_problem_json_becomes_typed_errors(client: ScalpelClient, server: Server) -> None:
    with pytest.raises(ScalpelAPIError) as err:
        client.submit_job(spec(pruning={"sparsity": 2.0}))
    e = err.value
    assert (e.status, e.code, e.field) == (422, "validation_error", "pruning.sparsity")
    assert e.fields == ["pruning.sparsity"] and e.title and "sparsity" in (e.detail or "")
    with pytest.raises(ScalpelAPIError) as err:
        client.submit_job(spec(model="no-such-model"))
    assert (err.value.status, err.value.code, err.value.field) == (404, "model_not_found", "model")
    with pytest.raises(ScalpelAPIError) as err:
        client.get_job("00000000-0000-0000-0000-000000000000")
    assert (err.value.status, err.value.code) == (404, "job_not_found")
    with ScalpelClient(server.url, "sk_bad_key") as bad, pytest.raises(ScalpelAPIError) as err:
        bad.get_job("x")
    assert (err.value.status, err.value.code) == (401, "unauthenticated")


def _recording(server: Server, seen: list[httpx.Request]) -> ScalpelClient:
    http = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"},
        event_hooks={"request": [seen.append]},
    )  # fmt: skip
    return ScalpelClient(server.url, server.api_key, http=http)


def test_download_resumes_a_partial_file(server: Server, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    seen: list[httpx.Request] = []
    with _recording(server, seen) as client:
        job = client.submit_job(spec())
        server.add_artifact(job["id"], data)
        out = tmp_path / "out"
        out.mkdir()
        (out / "model.tar.gz.part").write_bytes(data[:1_000_000])
        progress: list[int] = []
        path = client.download_artifact(
            job["id"], "model", out, on_progress=lambda done, _total: progress.append(done)
        )
        assert path == out / "model.tar.gz" and path.read_bytes() == data
        assert not (out / "model.tar.gz.part").exists()
        ranged = [r for r in seen if "range" in r.headers]
        assert ranged[-1].headers["range"] == "bytes=1000000-"
        assert ranged[-1].headers["if-range"] == f'"{sha256(data)}"'
        assert progress[-1] == len(data)
        seen.clear()  # already there and verified: nothing is fetched again
        assert client.download_artifact(job["id"], "model.tar.gz", out) == path
        assert not [r for r in seen if "/v1/artifacts/" in r.url.path]


def test_a_stale_partial_file_is_fetched_again(client: ScalpelClient, server: Server,
                                               tmp_path: Path) -> None:  # fmt: skip
    data = os.urandom(200_000)
    job = client.submit_job(spec())
    server.add_artifact(job["id"], data, kind="report", filename="report.json")
    dest = tmp_path / "r.json"
    (tmp_path / "r.json.part").write_bytes(b"garbage" * 100)
    assert client.download_artifact(job["id"], "report", dest).read_bytes() == data
    # A part as long as the file but wrong: 416-free path, mismatch, then a fresh download.
    dest.unlink()
    (tmp_path / "r.json.part").write_bytes(b"\0" * len(data))
    assert client.download_artifact(job["id"], "report", dest).read_bytes() == data


def test_digest_mismatch_leaves_no_file(client: ScalpelClient, server: Server,
                                        tmp_path: Path) -> None:  # fmt: skip
    job = client.submit_job(spec())
    server.add_artifact(job["id"], b"real bytes", sha256="ab" * 32)
    with pytest.raises(DigestMismatchError) as err:
        client.download_artifact(job["id"], "model", tmp_path)
    assert err.value.expected == "ab" * 32 and err.value.actual == sha256(b"real bytes")
    assert list(tmp_path.iterdir()) == []


def test_unknown_artifact_name(client: ScalpelClient) -> None:
    job = client.submit_job(spec())
    with pytest.raises(Exception, match="no artifact 'model'"):
        client.download_artifact(job["id"], "model", ".")


def test_recipes_and_a_job_from_one(client: ScalpelClient) -> None:
    recipes = client.list_recipes()
    names = [r["name"] for r in recipes]
    assert "obert-80" in names and names == sorted(names)
    pinned = client.get_recipe("obert-80@1")  # the @ goes through quoted
    assert (pinned["ref"], pinned["spec"]["pruning"]["sparsity"]) == ("obert-80@1", 0.8)
    latest = client.get_recipe("obert-80")["ref"]
    assert latest in {r["ref"] for r in recipes}
    with pytest.raises(ScalpelAPIError) as err:
        client.get_recipe("no-such-recipe")
    assert (err.value.status, err.value.code) == (404, "recipe_not_found")
    job = client.submit_job({"recipe": "obert-80", "model": "minilm-l6",
                             "dataset": {"name": "tweets"}})  # fmt: skip
    assert job["spec"]["recipe"] == latest
    assert job["spec"]["pruning"]["method"] == "obert"
