"""End to end with STORAGE_BACKEND=s3: the API over HTTP and a real Celery worker on Redis
and PostgreSQL, both storing in a real S3-compatible server (moto) on loopback. The job names
a recipe; the download redirects to a presigned URL."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
import redis

from alembic import command
from tests.conftest import alembic_config, create_database, drop_database
from tests.e2e.harness import (
    authorize,
    base_env,
    create_api_key,
    free_port,
    process,
    wait_job,
    wait_ready,
    worker_args,
)
from tests.e2e.test_redis_postgres import REDIS_DB_URL, tiny_job, upload_tiny_model
from tests.factories import s3 as s3_fixtures

pytestmark = pytest.mark.e2e
s3_endpoint = s3_fixtures.s3_endpoint
s3_env = s3_fixtures.s3_env


@pytest.fixture
def s3_stack(tmp_path: Path, s3_env: dict[str, str]) -> Iterator[httpx.Client]:
    name = f"scalpel_e2e_s3_{abs(hash(tmp_path)) % 10**8}"
    db_url = create_database(name)
    command.upgrade(alembic_config(db_url), "head")
    redis.Redis.from_url(REDIS_DB_URL).flushdb()
    port = free_port()
    env = base_env(
        tmp_path, DATABASE_URL=db_url, REDIS_URL=REDIS_DB_URL, PORT=str(port),
        **{k.upper(): v for k, v in s3_env.items()},
    )  # fmt: skip
    try:
        with (
            process([sys.executable, "-m", "app", "serve"], env, tmp_path / "api.log") as api,
            process(worker_args(), env, tmp_path / "worker.log"),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            wait_ready(client, api, tmp_path / "api.log")
            yield authorize(client, create_api_key(env))
    finally:
        drop_database(name)


def test_recipe_job_stores_in_s3_and_downloads_by_redirect(
    s3_stack: httpx.Client, tmp_path: Path, s3_env: dict[str, str]
) -> None:
    client = s3_stack
    model_id = upload_tiny_model(client, tmp_path)
    spec = tiny_job(
        model_id, recipe="gmp-80",
        pruning={"schedule": {"epochs": None, "steps": 6, "pruning_steps": 2}},
        training={"max_steps": 4, "recovery_max_steps": 8, "batch_size": 8},
    )  # fmt: skip
    spec.pop("quantization")
    r = client.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["recipe"] == "gmp-80@2"
    logs = [tmp_path / "api.log", tmp_path / "worker.log"]
    job = wait_job(client, r.json()["id"], logs)
    assert job["status"] == "succeeded", job

    arts = {a["kind"]: a for a in client.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]}
    s3 = boto3.client(
        "s3", endpoint_url=s3_env["s3_endpoint_url"], region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_env["s3_bucket"]).get("Contents", [])}
    sha = arts["report"]["sha256"]
    assert f"artifacts/sha256/{sha[:2]}/{sha[2:4]}/{sha}" in keys
    assert not (tmp_path / "artifacts" / "sha256").exists()  # nothing in the local store

    redirect = client.get(f"/v1/artifacts/{arts['report']['id']}")
    assert redirect.status_code == 307
    got = httpx.get(redirect.headers["location"])
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == sha
    report = json.loads(got.content)
    assert report["spec"]["recipe"] == "gmp-80@2"
    assert report["spec"]["pruning"]["method"] == "magnitude"
    assert report["spec"]["pruning"]["sparsity"] == 0.8
    assert {"torch", "transformers", "scalpel"} <= set(report["versions"])
    streamed = client.get(f"/v1/artifacts/{arts['model']['id']}", params={"redirect": "false"})
    assert hashlib.sha256(streamed.content).hexdigest() == arts["model"]["sha256"]
