"""Inspect and unpack uploaded model archives (.zip, .tar.gz) without trusting them.

Each member is checked before it is read or written: names are normalised (`./a` is `a`;
the `./` root entry `tar czf m.tar.gz .` writes is skipped), and there are no absolute
paths, no `..`, no links, no device files, no path twice, a bounded member count, a bounded
total uncompressed size and no more than MAX_INFLATE_RATIO times the archive's own size.
Members are visited once, in archive order (`ArchiveScan`): a .tar.gz is one gzip stream, so
reading its members in any other order would decompress it from the start again for every
backward step. The decompressed bytes of a .tar.gz (tar headers included) are counted as they
are produced, and tar metadata (pax and GNU long-name headers, which tarfile reads whole) is
bounded. The worker imports `safe_extract` to unpack uploaded models.
"""

from __future__ import annotations

import gzip
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any, Literal, Protocol, cast

ArchiveFormat = Literal["zip", "tar.gz"]
CHUNK = 1024 * 1024
# What corrupt, encrypted or exotic archives raise while being read.
READ_ERRORS = (
    zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, KeyError,
    RuntimeError, NotImplementedError,
)  # fmt: skip
# A pax or GNU long-name header holds a path and a few attributes; tarfile reads each whole
# and parses its records one by one: bounded one by one and in all.
MAX_TAR_META_BYTES = 64 * 1024
MAX_TAR_META_TOTAL_BYTES = 1024 * 1024
_TAR_META_TYPES = (
    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)  # fmt: skip
# Decompressed tar bytes besides the members' data: per member a header, a metadata header's
# own header and block padding; the metadata; the end-of-archive blocks and record padding.
_TAR_OVERHEAD_PER_MEMBER = 3 * tarfile.BLOCKSIZE
_TAR_OVERHEAD = MAX_TAR_META_TOTAL_BYTES + 64 * 1024
_TAR_BUFSIZE = 256 * 1024
# Model weights barely compress (pruned ones a few times): an archive that inflates more than
# MAX_INFLATE_RATIO times its size, and past INFLATE_FLOOR_BYTES, is padding (a bomb), refused
# from the declared sizes before the padding is decompressed.
MAX_INFLATE_RATIO = 100
INFLATE_FLOOR_BYTES = 64 * 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


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


def _is_root(raw: str) -> bool:
    """The archive's own top folder, `.` or `./`, as `tar czf m.tar.gz .` writes it."""
    parts = raw.split("/")
    return parts[0] == "." and all(p in ("", ".") for p in parts)


def _safe_name(raw: str) -> str:
    """The member's normalised relative path (`./a/./b` is `a/b`)."""
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


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a pax or GNU long-name header larger than MAX_TAR_META_BYTES, or past
    MAX_TAR_META_TOTAL_BYTES of them, before tarfile reads it."""

    def _proc_member(self, tar: Any) -> Any:
        if self.type in _TAR_META_TYPES:
            left = getattr(tar, "_scalpel_meta_left", MAX_TAR_META_TOTAL_BYTES)
            if self.size > min(left, MAX_TAR_META_BYTES):
                raise ArchiveError(
                    "unsafe_archive", f"tar metadata headers over {MAX_TAR_META_BYTES} bytes "
                    f"each or {MAX_TAR_META_TOTAL_BYTES} bytes in all",
                )  # fmt: skip
            tar._scalpel_meta_left = left - self.size
        return super()._proc_member(tar)  # type: ignore[misc]


class _CountedReader:
    """Counts the bytes read from `src` and refuses to go past `limit`."""

    def __init__(self, src: Readable, limit: int) -> None:
        self._src = src
        self._limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0 or self.count + size > self._limit:
            size = self._limit - self.count + 1
        data = self._src.read(size)
        self.count += len(data)
        if self.count > self._limit:
            raise ArchiveError(
                "archive_too_large", f"the decompressed archive is over {self._limit} bytes"
            )
        return data


class MemberStream:
    """A member's stream whose read errors are ArchiveErrors naming the member."""

    def __init__(self, src: IO[bytes], name: str) -> None:
        self._src = src
        self.name = name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._src.read(size)
        except READ_ERRORS as exc:
            raise ArchiveError(
                "invalid_archive", f"cannot read member {self.name!r}: {exc}"
            ) from exc


class ArchiveScan:
    """Visit an archive's members once, in archive order, each checked before it is
    yielded with a stream of its content (regular files; None for folders). A member's
    stream is valid until the next member is asked for. `members` lists those seen so far.

        with ArchiveScan(path, fmt, max_members=..., max_total_bytes=...) as scan:
            for member, stream in scan: ...
    """

    def __init__(
        self, path: Path, fmt: ArchiveFormat, *, max_members: int, max_total_bytes: int
    ) -> None:
        self.fmt = fmt
        self.members: list[Member] = []
        self._max_members = max_members
        self._max_total = max_total_bytes
        self._max_inflated = INFLATE_FLOOR_BYTES
        self._total = 0
        self._roots = 0
        self._files: set[str] = set()
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._raw: IO[bytes] | None = None
        self._gz: gzip.GzipFile | None = None
        try:
            self._max_inflated = max(INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO * path.stat().st_size)
            if fmt == "zip":
                self._zip = zipfile.ZipFile(path)
            else:
                self._raw = path.open("rb")
                data = min(max_total_bytes, self._max_inflated)
                limit = data + max_members * _TAR_OVERHEAD_PER_MEMBER + _TAR_OVERHEAD
                self._gz = gzip.GzipFile(fileobj=self._raw, mode="rb")
                counted = _CountedReader(self._gz, limit)
                self._tar = tarfile.open(  # noqa: SIM115 (closed by close())
                    None, "r|", cast(Any, counted), _TAR_BUFSIZE, tarinfo=_BoundedTarInfo
                )
        except READ_ERRORS as exc:
            self.close()
            raise ArchiveError("invalid_archive", f"cannot open the {fmt} archive: {exc}") from exc

    def close(self) -> None:
        for closable in (self._zip, self._tar, self._gz, self._raw):
            if closable is not None:
                closable.close()

    def __enter__(self) -> ArchiveScan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    def __iter__(self) -> Iterator[tuple[Member, MemberStream | None]]:
        try:
            if self._zip is not None:
                yield from self._iter_zip(self._zip)
            else:
                assert self._tar is not None
                yield from self._iter_tar(self._tar)
        except READ_ERRORS as exc:
            raise ArchiveError("invalid_archive", f"corrupt archive: {exc}") from exc

    def _admit_root(self) -> None:
        """A `./` entry: counted towards max_members, neither kept nor yielded."""
        self._roots += 1
        if len(self.members) + self._roots > self._max_members:
            raise ArchiveError(
                "archive_too_large", f"more than {self._max_members} members in the archive"
            )

    def _admit(self, name: str, size: int, is_dir: bool) -> Member:
        if len(self.members) + self._roots >= self._max_members:
            raise ArchiveError(
                "archive_too_large", f"more than {self._max_members} members in the archive"
            )
        self._total += size
        if self._total > self._max_total:
            raise ArchiveError(
                "archive_too_large", f"uncompressed size over the limit of {self._max_total} bytes"
            )
        if self._total > self._max_inflated:
            raise ArchiveError(
                "archive_too_large", f"the archive inflates to over {self._max_inflated} bytes, "
                f"more than {MAX_INFLATE_RATIO} times its size: padding, not weights",
            )  # fmt: skip
        if not is_dir:
            if name in self._files:
                raise ArchiveError("unsafe_archive", "the archive holds the same path twice")
            self._files.add(name)
        member = Member(name, size, is_dir)
        self.members.append(member)
        return member

    def _iter_zip(self, zf: zipfile.ZipFile) -> Iterator[tuple[Member, MemberStream | None]]:
        for info in zf.infolist():
            kind = stat.S_IFMT(info.external_attr >> 16)
            if info.is_dir() and kind in (0, stat.S_IFDIR) and _is_root(info.filename):
                self._admit_root()
                continue
            name = _safe_name(info.filename)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                what = "symlink" if kind == stat.S_IFLNK else "special file"
                raise ArchiveError("unsafe_archive", f"member {name!r} is a {what}")
            if info.is_dir():
                yield self._admit(name, 0, True), None
                continue
            member = self._admit(name, info.file_size, False)
            with zf.open(info) as f:
                yield member, MemberStream(f, name)

    def _iter_tar(self, tar: tarfile.TarFile) -> Iterator[tuple[Member, MemberStream | None]]:
        for tinfo in tar:
            if tinfo.isdir() and _is_root(tinfo.name):
                self._admit_root()
                continue
            name = _safe_name(tinfo.name)
            if tinfo.issym() or tinfo.islnk():
                raise ArchiveError("unsafe_archive", f"member {name!r} is a link")
            if tinfo.isdir():
                yield self._admit(name, 0, True), None
                continue
            if not tinfo.isreg():
                raise ArchiveError("unsafe_archive", f"member {name!r} is a special file")
            member = self._admit(name, tinfo.size, False)
            f = tar.extractfile(tinfo)
            if f is None:
                raise ArchiveError("invalid_archive", f"cannot read member {name!r}")
            with f:
                yield member, MemberStream(f, name)


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


def read_bounded(src: MemberStream, limit: int) -> bytes:
    """At most `limit` bytes of a member, in chunks."""
    chunks: list[bytes] = []
    left = limit
    while left > 0 and (chunk := src.read(min(left, CHUNK))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _copy_bounded(src: MemberStream, dest: Path, budget: int) -> int:
    written = 0
    with dest.open("xb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > budget:
                raise ArchiveError("archive_too_large", "uncompressed size over the limit")
            out.write(chunk)
    return written


def _clear(dest: Path) -> None:
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def safe_extract(
    archive_path: Path,
    archive_format: str,
    dest: Path,
    *,
    max_members: int,
    max_total_bytes: int,
) -> Path:
    """Unpack regular files and folders only, within the limits, in one pass over the
    archive; returns the folder that holds config.json. Raises ArchiveError; on error nothing
    is left under dest."""
    if archive_format not in ("zip", "tar.gz"):
        raise ArchiveError("invalid_archive", f"unknown archive format {archive_format!r}")
    fmt: ArchiveFormat = "zip" if archive_format == "zip" else "tar.gz"
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with ArchiveScan(
            archive_path, fmt, max_members=max_members, max_total_bytes=max_total_bytes
        ) as scan:
            budget = max_total_bytes
            for m, src in scan:
                target = (root / m.name).resolve()
                if not target.is_relative_to(root) or target == root:
                    raise ArchiveError("unsafe_archive", f"member {m.name!r} leaves the folder")
                try:
                    if src is None:
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    budget -= _copy_bounded(src, target, budget)
                except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                    raise ArchiveError(
                        "unsafe_archive", f"member {m.name!r} clashes with another member"
                    ) from exc
            prefix = model_root(scan.members)
    except BaseException:
        _clear(dest)
        raise
    return root / prefix.rstrip("/") if prefix else root
