"""Resumable, verified downloads: bytes go to `<dest>.part`, a later try continues it with a
Range request (If-Range on the ETag, so a changed file starts over), the sha-256 is checked
against the artifact's digest (and the Repr-Digest header), then the part is renamed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path
from typing import IO

import httpx

from scalpel_client.errors import DigestMismatchError, ScalpelError

CHUNK = 1024 * 1024
_SHA256_ITEM = re.compile(r"(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def parse_repr_digest(value: str | None) -> str | None:
    """`sha-256=:<base64>:` (RFC 9530) -> hex, or None."""
    if not value:
        return None
    match = _SHA256_ITEM.search(value)
    if match is None:
        return None
    try:
        return base64.b64decode(match.group(1), validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def target_path(dest: str | Path, filename: str) -> Path:
    """A folder (existing, or spelled with a trailing slash) gets the artifact's file name."""
    raw = str(dest)
    path = Path(dest).expanduser()
    if path.is_dir() or raw.endswith(("/", os.sep)):
        return path / Path(filename).name
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class PartialDownload:
    """One artifact's download into dest, across as many requests as it takes."""

    def __init__(self, dest: Path, sha256: str | None, size: int | None = None) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.expected = sha256.lower() if sha256 else None
        self.size = size
        self.offset = 0
        self._hash = hashlib.sha256()
        self._out: IO[bytes] | None = None
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.part.is_file():
            with self.part.open("rb") as f:
                while chunk := f.read(CHUNK):
                    self._hash.update(chunk)
                    self.offset += len(chunk)
        self.resumed = self.offset > 0  # bytes from an earlier try are part of the result

    def already_done(self) -> bool:
        """dest already holds the expected bytes."""
        return (
            self.expected is not None and self.dest.is_file()
            and (self.size is None or self.dest.stat().st_size == self.size)
            and file_sha256(self.dest) == self.expected
        )  # fmt: skip

    def request_headers(self) -> dict[str, str]:
        if self.offset == 0:
            return {}
        headers = {"Range": f"bytes={self.offset}-"}
        if self.expected:
            headers["If-Range"] = f'"{self.expected}"'
        return headers

    def complete_on_disk(self) -> bool:
        """After a 416: the part already holds the whole file."""
        return self.size is not None and self.offset == self.size

    def begin(self, response: httpx.Response) -> None:
        """Open the part for this response: appending to a 206 that continues it, from
        scratch for a 200."""
        announced = parse_repr_digest(response.headers.get("Repr-Digest"))
        announced = announced or response.headers.get("X-Checksum-SHA256", "").lower() or None
        if announced and self.expected and announced != self.expected:
            self.reset()  # the file changed since the listing: trust the response
        self.expected = announced or self.expected
        start = None
        if response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            start = int(match.group(1)) if match else None
            if match and match.group(3) != "*":
                self.size = int(match.group(3))
        if start is not None and start == self.offset and self.offset > 0:
            self._out = self.part.open("ab")
            return
        if response.status_code == 206:
            raise ScalpelError(f"the server sent a range that does not continue {self.part}")
        self.reset()
        self.resumed = False
        length = response.headers.get("Content-Length")
        self.size = int(length) if length and length.isdigit() else self.size
        self._out = self.part.open("wb")

    def write(self, chunk: bytes) -> None:
        assert self._out is not None, "begin() first"
        self._out.write(chunk)
        self._hash.update(chunk)
        self.offset += len(chunk)

    def close(self) -> None:
        if self._out is not None:
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()
            self._out = None

    def reset(self) -> None:
        self.close()
        self.part.unlink(missing_ok=True)
        self._hash = hashlib.sha256()
        self.offset = 0

    def finish(self) -> Path:
        """Verify the digest, then rename the part onto dest (atomic on one file system)."""
        self.close()
        actual = self._hash.hexdigest()
        if self.expected is None:
            raise ScalpelError(f"no sha-256 to verify {self.dest} against")
        if actual != self.expected:
            self.reset()
            raise DigestMismatchError(str(self.dest), self.expected, actual)
        os.replace(self.part, self.dest)
        return self.dest
