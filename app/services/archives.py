"""Inspect and unpack uploaded model archives (.zip, .tar.gz) without trusting them.

Members are checked before anything is read or written: no absolute paths, no `..`, no links,
no device files, a bounded member count and a bounded total uncompressed size. The worker
imports `safe_extract` to unpack uploaded models.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

ArchiveFormat = Literal["zip", "tar.gz"]
CHUNK = 1024 * 1024
# What corrupt, encrypted or exotic archives raise while being read.
READ_ERRORS = (
    zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, KeyError,
    RuntimeError, NotImplementedError,
)  # fmt: skip


class ArchiveError(Exception):
    """An archive that is corrupt (code invalid_archive) or unsafe (unsafe_archive,
    archive_too_large)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Member:
    name: str  # normalised relative POSIX path
    size: int
    is_dir: bool


def sniff_format(path: Path) -> ArchiveFormat:
    with path.open("rb") as f:
        head = f.read(4)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    raise ArchiveError("invalid_archive", "not a .zip or .tar.gz archive")


def _safe_name(raw: str) -> str:
    if "\x00" in raw or "\\" in raw:
        raise ArchiveError("unsafe_archive", f"member {raw!r}: illegal character in name")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ArchiveError("unsafe_archive", f"member {raw!r}: absolute path")
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArchiveError("unsafe_archive", f"member {raw!r}: path traversal")
    if not parts:
        raise ArchiveError("unsafe_archive", f"member {raw!r}: empty name")
    return "/".join(parts)


class ArchiveReader:
    """Uniform, read-only access to a zip or tar.gz archive's regular files."""

    def __init__(self, path: Path, fmt: ArchiveFormat) -> None:
        self.fmt = fmt
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._tar_members: dict[str, tarfile.TarInfo] = {}
        try:
            if fmt == "zip":
                self._zip = zipfile.ZipFile(path)
            else:
                self._tar = tarfile.open(path, mode="r:gz")  # noqa: SIM115 (closed by close())
        except READ_ERRORS as exc:
            raise ArchiveError("invalid_archive", f"cannot open the {fmt} archive: {exc}") from exc

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()

    def members(self, *, max_members: int, max_total_bytes: int) -> list[Member]:
        out: list[Member] = []
        total = 0
        try:
            for member in self._iter_raw():
                if len(out) >= max_members:
                    raise ArchiveError(
                        "archive_too_large", f"more than {max_members} members in the archive"
                    )
                out.append(member)
                total += member.size
                if total > max_total_bytes:
                    raise ArchiveError(
                        "archive_too_large",
                        f"uncompressed size over the limit of {max_total_bytes} bytes",
                    )
        except READ_ERRORS as exc:
            raise ArchiveError("invalid_archive", f"corrupt archive: {exc}") from exc
        names = [m.name for m in out if not m.is_dir]
        if len(set(names)) != len(names):
            raise ArchiveError("unsafe_archive", "the archive holds the same path twice")
        return out

    def _iter_raw(self) -> Iterator[Member]:
        if self._zip is not None:
            for info in self._zip.infolist():
                name = _safe_name(info.filename)
                mode = info.external_attr >> 16
                kind = stat.S_IFMT(mode)
                if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                    what = "symlink" if kind == stat.S_IFLNK else "special file"
                    raise ArchiveError("unsafe_archive", f"member {name!r} is a {what}")
                yield Member(name, 0 if info.is_dir() else info.file_size, info.is_dir())
            return
        assert self._tar is not None
        for tinfo in self._tar:
            name = _safe_name(tinfo.name)
            if tinfo.issym() or tinfo.islnk():
                raise ArchiveError("unsafe_archive", f"member {name!r} is a link")
            if not (tinfo.isreg() or tinfo.isdir()):
                raise ArchiveError("unsafe_archive", f"member {name!r} is a special file")
            if tinfo.isreg():
                self._tar_members[name] = tinfo
            yield Member(name, tinfo.size if tinfo.isreg() else 0, tinfo.isdir())

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        try:
            if self._zip is not None:
                with self._zip.open(self._zip_name(name)) as f:
                    yield f
                return
            assert self._tar is not None
            f2 = self._tar.extractfile(self._tar_members[name])
            if f2 is None:
                raise ArchiveError("invalid_archive", f"cannot read member {name!r}")
            with f2:
                yield f2
        except READ_ERRORS as exc:
            raise ArchiveError("invalid_archive", f"cannot read member {name!r}: {exc}") from exc

    def _zip_name(self, name: str) -> str:
        assert self._zip is not None
        for info in self._zip.infolist():
            if _safe_name(info.filename) == name:
                return info.filename
        raise KeyError(name)


@contextmanager
def open_archive(path: Path, fmt: ArchiveFormat) -> Iterator[ArchiveReader]:
    reader = ArchiveReader(path, fmt)
    try:
        yield reader
    finally:
        reader.close()


def model_root(members: list[Member]) -> str:
    """'' when config.json sits at the root, else 'top/' for one top-level folder."""
    files = {m.name for m in members if not m.is_dir}
    if "config.json" in files:
        return ""
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) == 1:
        top = next(iter(tops))
        if f"{top}/config.json" in files:
            return f"{top}/"
    raise ArchiveError(
        "invalid_model", "config.json must sit at the archive root or under one top-level folder"
    )


def _copy_bounded(src: IO[bytes], dest: Path, budget: int) -> int:
    written = 0
    with dest.open("xb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > budget:
                raise ArchiveError("archive_too_large", "uncompressed size over the limit")
            out.write(chunk)
    return written


def safe_extract(
    archive_path: Path,
    archive_format: str,
    dest: Path,
    *,
    max_members: int,
    max_total_bytes: int,
) -> Path:
    """Unpack regular files and folders only, within the limits; returns the folder that
    holds config.json. Raises ArchiveError; on error nothing is left under dest."""
    if archive_format not in ("zip", "tar.gz"):
        raise ArchiveError("invalid_archive", f"unknown archive format {archive_format!r}")
    fmt: ArchiveFormat = "zip" if archive_format == "zip" else "tar.gz"
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with open_archive(archive_path, fmt) as reader:
            members = reader.members(max_members=max_members, max_total_bytes=max_total_bytes)
            prefix = model_root(members)
            budget = max_total_bytes
            for m in members:
                target = (root / m.name).resolve()
                if not target.is_relative_to(root):
                    raise ArchiveError("unsafe_archive", f"member {m.name!r} leaves the folder")
                if m.is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with reader.open(m.name) as src:
                    budget -= _copy_bounded(src, target, budget)
    except BaseException:
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        raise
    return root / prefix.rstrip("/") if prefix else root
