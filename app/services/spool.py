"""Spool an upload to a private temporary file, hashing it and enforcing a byte limit."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.errors import PayloadTooLarge

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Spooled:
    path: Path
    size_bytes: int
    sha256: str


@contextmanager
def spooled(stream: BinaryIO, work_dir: Path, max_bytes: int) -> Iterator[Spooled]:
    """The file is removed when the block exits."""
    folder = work_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder)
    path = Path(name)
    try:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"upload larger than {max_bytes} bytes", field="file")
                h.update(chunk)
                out.write(chunk)
        yield Spooled(path=path, size_bytes=size, sha256=h.hexdigest())
    finally:
        path.unlink(missing_ok=True)
