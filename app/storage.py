"""Content-addressed artifact store behind a small interface: local here, S3 in app.storage_s3."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024
KEY_PATTERN = re.compile(r"sha256/([0-9a-f]{2})/([0-9a-f]{2})/(\1\2[0-9a-f]{60})")


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


@dataclass(frozen=True)
class ObjectInfo:
    """An object found in the store; ``modified_at`` is refreshed by every put of the same
    content (so a sweeper's grace period covers a re-upload of an old orphan)."""

    key: str
    size_bytes: int
    modified_at: datetime


class ArtifactStore(Protocol):
    def put_file(self, path: Path) -> StoredObject: ...
    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> StoredObject: ...
    def open(self, key: str) -> BinaryIO: ...
    def local_path(self, key: str) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def read_range(self, key: str, start: int, end: int) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def iter_objects(self) -> Iterator[ObjectInfo]: ...
    def modified_at(self, key: str) -> datetime | None: ...
    def delete_unless_modified(self, key: str, modified_at: datetime) -> bool: ...


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


def _stat_time(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)


def _modified(path: Path) -> datetime:
    return _stat_time(path.stat())


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
            try:
                os.utime(dest)  # stored already and in use again: the sweeper's grace restarts
            except FileNotFoundError:  # not stored, or the sweeper has just set it aside
                os.replace(tmp_name, dest)
            else:
                os.unlink(tmp_name)
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

    def modified_at(self, key: str) -> datetime | None:
        try:
            return _modified(self._path(key))
        except FileNotFoundError:
            return None

    def delete_unless_modified(self, key: str, modified_at: datetime) -> bool:
        """Remove the object unless a put wrote or touched it since ``modified_at`` (what
        the sweeper saw when it judged it unused); True when removed. The check and the
        removal are one step for a put: the file is first renamed aside (atomic), then its
        time compared. A put before the rename changed that time, and the file is put back;
        a put after it finds no file and writes its own. The aside name starts with `tmp`
        under <root>/tmp, so one a killed sweeper left is removed as a stale temporary."""
        path = self._path(key)
        aside = self.root / "tmp" / f"tmp-deleting-{uuid.uuid4().hex}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return False
        if _modified(aside) != modified_at:
            os.replace(aside, path)  # in use again (a newer copy there is the same bytes)
            return False
        aside.unlink()
        return True

    def iter_objects(self) -> Iterator[ObjectInfo]:
        """Every object under <root>/sha256 (files not named like a key are skipped)."""
        base = self.root / "sha256"
        for folder, _dirs, files in os.walk(base):
            for name in files:
                path = Path(folder) / name
                key = path.relative_to(self.root).as_posix()
                if not KEY_PATTERN.fullmatch(key):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                when = _stat_time(st)
                yield ObjectInfo(key=key, size_bytes=st.st_size, modified_at=when)
