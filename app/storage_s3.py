"""Content-addressed artifact store in an S3-compatible bucket (boto3).

Keys are the local store's (sha256/<aa>/<bb>/<hex>), under settings.s3_prefix in the bucket.
Big files go up in parts (boto3's managed upload_file). Readers that need a file on disk
(the worker) get a verified copy cached under <storage_dir>/s3-cache."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.storage import CHUNK, LocalStore, StoredObject, spool_hashed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from app.settings import Settings

MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    """Same interface as LocalStore; objects live in `bucket` at `prefix` + key."""

    def __init__(self, client: S3Client, bucket: str, prefix: str, cache_dir: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.cache_dir = cache_dir

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        return cls(client, settings.s3_bucket, settings.s3_prefix, settings.storage_dir)

    key_for = staticmethod(LocalStore.key_for)

    def _object_key(self, key: str) -> str:
        if not key.startswith("sha256/") or ".." in key:
            raise ValueError(f"bad storage key {key!r}")
        return self.prefix + key

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredObject:
        """Spools to a temporary file while hashing (the key is the digest), then uploads."""
        tmp_name, digest, size = spool_hashed(stream, self.cache_dir / "tmp", max_bytes)
        try:
            key = self.key_for(digest)
            if not self.exists(key):
                self.client.upload_file(tmp_name, self.bucket, self._object_key(key))
            return StoredObject(key=key, sha256=digest, size_bytes=size)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def put_file(self, path: Path) -> StoredObject:
        with path.open("rb") as f:
            return self.put_stream(f)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in MISSING_CODES:
                return False
            raise
        return True

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end inclusive."""
        obj = self.client.get_object(
            Bucket=self.bucket, Key=self._object_key(key), Range=f"bytes={start}-{end}"
        )
        return obj["Body"].read()

    def local_path(self, key: str) -> Path:
        """A local copy (downloaded once, digest checked) for readers that need a path."""
        dest = self.cache_dir / "s3-cache" / key
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self._object_key(key), tmp_name)
            h = hashlib.sha256()
            with open(tmp_name, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            if h.hexdigest() != key.rsplit("/", 1)[-1]:
                raise ValueError(f"object {key!r} does not match its digest")
            os.replace(tmp_name, dest)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return dest

    def open(self, key: str) -> BinaryIO:
        return self.local_path(key).open("rb")

    def copy_to(self, key: str, dest: Path) -> None:
        self.client.download_file(self.bucket, self._object_key(key), str(dest))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def presigned_url(self, key: str, *, filename: str, media_type: str, expires_s: int) -> str:
        """A GET URL anyone holding it may use until it expires."""
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._object_key(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
                "ResponseContentType": media_type,
            },
            ExpiresIn=expires_s,
        )
