"""S3Store against a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from app.storage import LocalStore, TooLarge
from app.storage_s3 import S3Store
from app.stores import get_store
from tests.factories import s3 as s3_fixtures

s3_endpoint = s3_fixtures.s3_endpoint
s3_env = s3_fixtures.s3_env

DATA = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture
def store(s3_env: dict[str, str], tmp_path: Path) -> S3Store:
    settings = Settings(storage_dir=tmp_path, **s3_env)  # type: ignore[arg-type]
    got = get_store(settings)
    assert isinstance(got, S3Store)
    return got


def test_local_backend_is_the_default(tmp_path: Path) -> None:
    assert isinstance(get_store(Settings(storage_dir=tmp_path)), LocalStore)


def test_put_exists_range_and_delete(store: S3Store) -> None:
    obj = store.put_stream(io.BytesIO(DATA))
    sha = hashlib.sha256(DATA).hexdigest()
    assert obj.sha256 == sha
    assert obj.size_bytes == len(DATA)
    assert obj.key == f"sha256/{sha[:2]}/{sha[2:4]}/{sha}"
    assert store.exists(obj.key)
    head = store.client.head_object(Bucket=store.bucket, Key="artifacts/" + obj.key)
    assert head["ContentLength"] == len(DATA)
    assert store.read_range(obj.key, 100, 199) == DATA[100:200]
    assert store.local_path(obj.key).read_bytes() == DATA
    with store.open(obj.key) as f:
        assert f.read() == DATA
    assert store.put_stream(io.BytesIO(DATA)) == obj  # same content, same key
    store.delete(obj.key)
    assert not store.exists(obj.key)


def test_missing_and_bad_keys(store: S3Store) -> None:
    assert not store.exists("sha256/00/00/" + "0" * 64)
    with pytest.raises(ValueError):
        store.exists("../etc/passwd")


def test_limit_and_multipart_upload(store: S3Store, tmp_path: Path) -> None:
    with pytest.raises(TooLarge):
        store.put_stream(io.BytesIO(DATA), max_bytes=100)
    big = tmp_path / "big.bin"
    payload = hashlib.sha256(b"x").digest() * (20 * 1024 * 1024 // 32)  # 20 MiB: multipart
    big.write_bytes(payload)
    obj = store.put_file(big)
    assert obj.size_bytes == len(payload)
    assert store.read_range(obj.key, len(payload) - 32, len(payload) - 1) == payload[-32:]


def test_presigned_url_serves_the_bytes(store: S3Store) -> None:
    obj = store.put_stream(io.BytesIO(DATA))
    url = store.presigned_url(
        obj.key, filename="model.tar.gz", media_type="application/gzip", expires_s=60
    )
    r = httpx.get(url)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == obj.sha256
    assert r.headers["content-disposition"] == 'attachment; filename="model.tar.gz"'
