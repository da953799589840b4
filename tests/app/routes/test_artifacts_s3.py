"""Downloads with the S3 backend: a 307 to a presigned URL, or streamed with redirect=false."""

from __future__ import annotations

import hashlib

import httpx
from sqlalchemy.orm import Session

from app.services.api_keys import IssuedKey
from tests.app.conftest import MakeClient
from tests.factories import s3 as s3_fixtures
from tests.factories.jobs import make_artifact, make_job

s3_endpoint = s3_fixtures.s3_endpoint
s3_env = s3_fixtures.s3_env

DATA = bytes(range(256)) * 40
SHA = hashlib.sha256(DATA).hexdigest()


def test_download_redirects_to_presigned_url(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey, s3_env: dict[str, str]
) -> None:
    client = make_client(**s3_env)
    art = make_artifact(db_session, make_job(db_session, api_key.tenant_id), DATA)
    url = f"/v1/artifacts/{art.id}"
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["etag"] == f'"{SHA}"'
    location = r.headers["location"]
    assert location.startswith(s3_env["s3_endpoint_url"])
    assert "X-Amz-Signature=" in location
    got = httpx.get(location)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == SHA
    assert client.get(url, headers={"If-None-Match": f'"{SHA}"'}).status_code == 304

    streamed = client.get(url, params={"redirect": "false"})
    assert streamed.status_code == 200
    assert streamed.content == DATA
    part = client.get(url, params={"redirect": "false"}, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == DATA[10:20]
    assert client.get(f"/v1/artifacts/{art.id}x").status_code == 404
