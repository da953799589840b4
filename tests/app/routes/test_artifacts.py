from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import Artifact
from app.services.api_keys import IssuedKey
from tests.factories.jobs import make_artifact, make_job

DATA = bytes(range(256)) * 40  # 10240 bytes
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def artifact(client: TestClient, db_session: Session, api_key: IssuedKey) -> Artifact:
    return make_artifact(db_session, make_job(db_session, api_key.tenant_id), DATA)


def test_job_artifacts_list(client: TestClient, artifact: Artifact) -> None:
    body = client.get(f"/v1/jobs/{artifact.job_id}/artifacts").json()
    assert len(body["items"]) == 1
    item = body["items"][0]
    assert item["id"] == str(artifact.id)
    assert item["kind"] == "model"
    assert item["sha256"] == SHA
    assert item["size_bytes"] == len(DATA)
    assert item["download_url"] == f"/v1/artifacts/{artifact.id}"
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/artifacts").status_code == 404


def test_the_listing_says_which_int8_artifact_to_deploy(
    client: TestClient, db_session: Session, api_key: IssuedKey
) -> None:
    job = make_job(db_session, api_key.tenant_id)
    for kind in ("model_int8", "model_int8_onnx", "report"):
        make_artifact(db_session, job, kind.encode() + DATA, kind=kind)
    items = {a["kind"]: a for a in client.get(f"/v1/jobs/{job.id}/artifacts").json()["items"]}
    assert "needs Scalpel's code to load" in items["model_int8"]["note"]
    assert not items["model_int8"]["recommended"]
    assert items["model_int8_onnx"]["recommended"]
    assert items["report"]["note"] is None and not items["report"]["recommended"]


def test_download_with_digest_headers(client: TestClient, artifact: Artifact) -> None:
    r = client.get(f"/v1/artifacts/{artifact.id}")
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["etag"] == f'"{SHA}"'
    assert r.headers["x-checksum-sha256"] == SHA
    b64 = base64.b64encode(hashlib.sha256(r.content).digest()).decode()
    assert r.headers["repr-digest"] == f"sha-256=:{b64}:"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-disposition"] == 'attachment; filename="model.tar.gz"'
    assert r.headers["content-type"] == "application/gzip"
    head = client.head(f"/v1/artifacts/{artifact.id}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(DATA))


def test_range_requests(client: TestClient, artifact: Artifact) -> None:
    url = f"/v1/artifacts/{artifact.id}"
    r = client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.content == DATA[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(DATA)}"
    assert r.headers["repr-digest"].startswith("sha-256=:")  # of the whole file
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == DATA[-10:]
    rest = client.get(url, headers={"Range": f"bytes={len(DATA) - 5}-"})
    assert rest.content == DATA[-5:]
    bad = client.get(url, headers={"Range": f"bytes={len(DATA) + 10}-"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == f"bytes */{len(DATA)}"
    # If-Range with a different validator: the whole file.
    whole = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert whole.status_code == 200 and whole.content == DATA
    resumed = client.get(url, headers={"Range": "bytes=0-9", "If-Range": f'"{SHA}"'})
    assert resumed.status_code == 206 and resumed.content == DATA[:10]


def test_if_none_match(client: TestClient, artifact: Artifact) -> None:
    url = f"/v1/artifacts/{artifact.id}"
    r = client.get(url, headers={"If-None-Match": f'"{SHA}"'})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == f'"{SHA}"'
    assert client.get(url, headers={"If-None-Match": 'W/"x", *'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_unknown_artifact_is_404(client: TestClient) -> None:
    for raw in ("nope", str(uuid.uuid4())):
        r = client.get(f"/v1/artifacts/{raw}")
        assert r.status_code == 404
        assert r.json()["code"] == "artifact_not_found"
