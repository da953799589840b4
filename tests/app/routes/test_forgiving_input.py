"""Issue 18, through the API: forgiving where it is safe (a data set by its name, a `tar czf .`
archive), precise where it is not (a sparsity given as a percentage, a refused webhook URL, a
broken tokenizer)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.app.conftest import MakeClient, count_rows, stored_objects
from tests.app.routes.test_jobs import problem, spec
from tests.factories.archives import model_files, num_parameters, zip_bytes


def test_a_dataset_given_by_its_name_is_its_object(client: TestClient) -> None:
    r = client.post("/v1/jobs", json=spec(dataset="sst2"))
    assert r.status_code == 202, r.text
    stored = r.json()["spec"]["dataset"]
    assert stored["name"] == "sst2" and stored["max_length"] == 128
    assert client.get(f"/v1/jobs/{r.json()['id']}").json()["spec"]["dataset"] == stored
    as_object = client.post("/v1/jobs", json=spec(dataset={"name": "sst2"})).json()
    assert as_object["spec"]["dataset"] == stored


def test_a_dataset_name_takes_the_recipe_and_task_defaults(client: TestClient) -> None:
    r = client.post(
        "/v1/jobs", json={"model": "minilm-l6", "dataset": "sst2", "recipe": "obert-80"}
    )
    assert r.status_code == 202, r.text
    body = r.json()["spec"]
    assert body["dataset"]["name"] == "sst2" and body["pruning"]["method"] == "obert"


@pytest.mark.parametrize("dataset", ["", 5, None, ["sst2"]])
def test_a_dataset_that_is_no_name_is_still_422(client: TestClient, dataset: Any) -> None:
    body = problem(client.post("/v1/jobs", json={**spec(), "dataset": dataset}), 422,
                   "validation_error")  # fmt: skip
    assert body["field"] in ("dataset", "dataset.name"), body


@pytest.mark.parametrize(
    ("changes", "field", "hint"),
    [
        ({"pruning.sparsity": 80}, "pruning.sparsity", "a fraction in [0, 0.99]; 0.8?"),
        ({"pruning.sparsity": 90.5}, "pruning.sparsity", "a fraction in [0, 0.99]; 0.905?"),
        ({"pruning.sparsity": 100}, "pruning.sparsity", "a fraction in [0, 0.99]"),
        (
            {"pruning.sparsity": 0.9, "pruning.schedule": {"kind": "gradual", "epochs": 1,
                                                           "init_sparsity": 30}},
            "pruning.schedule.init_sparsity", "a fraction in [0, 0.99]; 0.3?",
        ),
    ],
    ids=["80", "90.5", "100", "init-30"],
)  # fmt: skip
def test_a_percentage_sparsity_gets_a_hint(
    client: TestClient, changes: dict[str, Any], field: str, hint: str
) -> None:
    body = problem(client.post("/v1/jobs", json=spec(**changes)), 422, "validation_error")
    assert body["field"] == field
    [error] = body["errors"]
    assert error["type"] == "less_than_equal"
    assert error["msg"] == f"Input should be less than or equal to 0.99: {hint}"
    assert body["detail"] == f"{field}: {error['msg']}"


@pytest.mark.parametrize("sparsity", [1, 0.995, 150])
def test_a_sparsity_that_is_no_percentage_gets_no_guess(
    client: TestClient, sparsity: float
) -> None:
    body = problem(client.post("/v1/jobs", json=spec(**{"pruning.sparsity": sparsity})), 422,
                   "validation_error")  # fmt: skip
    assert body["field"] == "pruning.sparsity"
    assert "?" not in body["detail"]  # 1 is 1% or 100%; the others are no percentage
    assert ("a fraction in [0, 0.99]" in body["detail"]) is (sparsity == 1)


@pytest.mark.parametrize(
    ("url", "env", "setting"),
    [
        ("http://10.0.0.7/h", {}, """WEBHOOK_ALLOW='["private"]'"""),
        ("http://127.0.0.1:9/h", {"webhook_allow": '["private"]'},
         """WEBHOOK_ALLOW='["loopback", "private"]'"""),
        ("http://[fe80::1]/h", {}, """WEBHOOK_ALLOW='["link_local"]'"""),
    ],
    ids=["private", "loopback-with-private-allowed", "link-local"],
)  # fmt: skip
def test_a_refused_webhook_url_names_the_setting(
    make_client: MakeClient, url: str, env: dict[str, str], setting: str
) -> None:
    body = problem(make_client(**env).post("/v1/jobs", json=spec(webhook_url=url)), 422,
                   "webhook_url_refused")  # fmt: skip
    assert body["field"] == "webhook_url"
    assert body["detail"].startswith("webhook_url refused: ")
    assert "the WEBHOOK_ALLOW setting lists the non-public address categories" in body["detail"]
    assert f"set {setting} to allow" in body["detail"]


def test_a_reserved_webhook_address_says_no_setting_allows_it(make_client: MakeClient) -> None:
    client = make_client(webhook_allow='["loopback", "private", "link_local"]')
    body = problem(client.post("/v1/jobs", json=spec(webhook_url="http://0.0.0.0/h")), 422,
                   "webhook_url_refused")  # fmt: skip
    assert "never a reserved address" in body["detail"]


def upload(client: TestClient, path: Path) -> Any:
    return client.post("/v1/models", files={"file": (path.name, path.read_bytes())})


def test_a_tar_czf_dot_archive_uploads(client: TestClient, tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    for name, data in model_files().items():
        (folder / name).write_bytes(data)
    archive = tmp_path / "m.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "."], cwd=folder, check=True)
    with tarfile.open(archive) as tf:
        assert "." in tf.getnames() and "./config.json" in tf.getnames()
    r = upload(client, archive)
    assert r.status_code == 201, r.text
    assert r.json()["num_parameters"] == num_parameters()
    job = client.post("/v1/jobs", json=spec(model=r.json()["id"], dataset="sst2"))
    assert job.status_code == 202, job.text


@pytest.mark.parametrize("name", ["./../escape.txt", "./a/../../escape.txt", "/etc/escape"])
def test_a_dot_archive_that_escapes_is_still_refused(
    client: TestClient, tmp_path: Path, name: str
) -> None:
    archive = tmp_path / "m.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for fname, data in {**model_files(), name: b"x"}.items():
            info = tarfile.TarInfo(fname if fname == name else f"./{fname}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    body = problem(upload(client, archive), 422, "unsafe_archive")
    assert body["field"] == "file"


def test_a_broken_tokenizer_is_refused_at_upload(
    client: TestClient, db_session: Session, settings_env: Path, tmp_path: Path
) -> None:
    files = model_files(tokenizer="json")
    doc = json.loads(files["tokenizer.json"])
    del doc["added_tokens"]
    files["tokenizer.json"] = json.dumps(doc).encode()
    (tmp_path / "m.zip").write_bytes(zip_bytes(files, prefix="m/"))
    before = count_rows(db_session)
    body = problem(upload(client, tmp_path / "m.zip"), 422, "invalid_tokenizer")
    assert body["field"] == "file"
    assert body["detail"] == (
        "tokenizer.json is broken: no `added_tokens` list (transformers reads it)"
    )
    assert count_rows(db_session) == before
    assert stored_objects(settings_env / "artifacts") == []
