"""Content-addressed artifact store in an S3-compatible bucket (boto3).

Keys are the local store's (sha256/<aa>/<bb>/<hex>), under settings.s3_prefix in the bucket.
Big files go up in parts (boto3's managed upload_file). Readers that need a file on disk
(the worker) get a verified copy cached under <storage_dir>/s3-cache."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.storage import CHUNK, KEY_PATTERN, LocalStore, ObjectInfo, StoredObject, spool_hashed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from app.settings import Settings

MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
# The headers an object is stored with, kept when `touch` replaces its metadata.
KEPT_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage",
                "CacheControl", "Expires")  # fmt: skip


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
            if not self.exists(key) or not self.touch(key):
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
        dest = self.cached_path(key)
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

    def touch(self, key: str) -> bool:
        """Refresh the object's LastModified (a copy onto itself, server side): it is in use
        again, so a sweeper's grace period starts over. S3 copies an object onto itself only
        when something changes, so the copy replaces the metadata with the object's own
        (content type and headers passed through) plus a `touched-at` entry. False when the
        object is gone or the server refused (an object over 5 GB cannot be copied in one
        request): upload it again instead."""
        name = self._object_key(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=name)
            kept = {h: head[h] for h in KEPT_HEADERS if h in head}  # type: ignore[literal-required]
            self.client.copy_object(
                Bucket=self.bucket, Key=name, CopySource={"Bucket": self.bucket, "Key": name},
                MetadataDirective="REPLACE",
                Metadata={**head.get("Metadata", {}), "touched-at": f"{time.time():.6f}"},
                **kept,
            )  # fmt: skip
        except ClientError:
            return False
        return True

    def modified_at(self, key: str) -> datetime | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in MISSING_CODES:
                return None
            raise
        return head["LastModified"]

    def delete_unless_modified(self, key: str, modified_at: datetime) -> bool:
        """Remove the object unless its LastModified moved since ``modified_at`` (a put
        touched it: in use again); True when removed. S3 has no delete conditional on the
        time (and a touch keeps the ETag), so the time is read just before the delete: a
        touch landing between that read and the delete (a round trip, milliseconds) still
        loses its object. A put that finds the object gone uploads it again, so only a put
        whose touch succeeded in that window is exposed."""
        if self.modified_at(key) != modified_at:
            return False
        self.delete(key)
        return True

    def iter_objects(self) -> Iterator[ObjectInfo]:
        """Every object under <prefix>sha256/ in the bucket."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "sha256/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix) :]
                if KEY_PATTERN.fullmatch(key):
                    yield ObjectInfo(
                        key=key, size_bytes=obj["Size"], modified_at=obj["LastModified"]
                    )

    def cached_path(self, key: str) -> Path:
        """Where local_path keeps its copy of ``key`` (it may not be there)."""
        return self.cache_dir / "s3-cache" / key

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
