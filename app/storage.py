"""Content-addressed artifact store behind a small interface: local here, S3 in app.storage_s3."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from app.settings import Settings

CHUNK = 1024 * 1024


class TooLarge(Exception):
    """The stream went past the byte limit it was given."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size_bytes: int


class ArtifactStore(Protocol):
    def put_file(self, path: Path) -> StoredObject: ...
    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredObject: ...
    def open(self, key: str) -> BinaryIO: ...
    def local_path(self, key: str) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def read_range(self, key: str, start: int, end: int) -> bytes: ...
    def delete(self, key: str) -> None: ...


def spool_hashed(
    stream: BinaryIO, tmp_dir: Path, max_bytes: int | None = None
) -> tuple[str, str, int]:
    """Copy ``stream`` to a new temporary file in ``tmp_dir`` while hashing it; returns the
    file's name, its sha256 and its size. Over ``max_bytes`` raises :class:`TooLarge`; on any
    error the temporary file is removed."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise TooLarge(max_bytes)
                h.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(tmp_name)
        raise
    return tmp_name, h.hexdigest(), size


class LocalStore:
    """Objects live at <root>/sha256/<aa>/<bb>/<hex>; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key.startswith("sha256/") or ".." in key:
            raise ValueError(f"bad storage key {key!r}")
        return self.root / key

    @staticmethod
    def key_for(digest: str) -> str:
        return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredObject:
        tmp_name, digest, size = spool_hashed(stream, self.root / "tmp", max_bytes)
        try:
            key = self.key_for(digest)
            dest = self._path(key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                os.unlink(tmp_name)
            else:
                os.replace(tmp_name, dest)
            return StoredObject(key=key, sha256=digest, size_bytes=size)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def put_file(self, path: Path) -> StoredObject:
        with path.open("rb") as f:
            return self.put_stream(f)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def copy_to(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end inclusive."""
        with self._path(key).open("rb") as f:
            f.seek(start)
            return f.read(end - start + 1)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def get_store(settings: Settings) -> ArtifactStore:
    """The store settings.storage_backend names (API and worker alike)."""
    if settings.storage_backend == "s3":
        from app.storage_s3 import S3Store

        return S3Store.from_settings(settings)
    return LocalStore(settings.storage_dir)
