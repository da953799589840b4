"""safe_extract: the worker unpacks uploaded models with it."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from app.services.archives import ArchiveError, safe_extract
from tests.factories.archives import model_files, targz_bytes, targz_with_special, zip_bytes

LIMITS = {"max_members": 64, "max_total_bytes": 10_000_000}


@pytest.mark.parametrize(
    ("fmt", "data", "sub"),
    [
        ("zip", zip_bytes(model_files()), ""),
        ("zip", zip_bytes(model_files(), prefix="bert/"), "bert"),
        ("tar.gz", targz_bytes(model_files(), prefix="bert/"), "bert"),
    ],
)
def test_safe_extract_returns_the_config_folder(
    tmp_path: Path, fmt: str, data: bytes, sub: str
) -> None:
    archive = tmp_path / "m.archive"
    archive.write_bytes(data)
    dest = tmp_path / "out"
    root = safe_extract(archive, fmt, dest, **LIMITS)
    assert root == (dest / sub if sub else dest).resolve()
    files = model_files()
    for name, content in files.items():
        assert (root / name).read_bytes() == content


@pytest.mark.parametrize(
    ("fmt", "data", "code"),
    [
        ("zip", zip_bytes({**model_files(), "../escape.txt": b"x"}), "unsafe_archive"),
        ("tar.gz", targz_with_special(model_files(), "l", tarfile.SYMTYPE, "/"), "unsafe_archive"),
        ("zip", zip_bytes({**model_files(), "big": b"\0" * 20_000_000}), "archive_too_large"),
        ("zip", b"PK\x03\x04 broken", "invalid_archive"),
        ("rar", b"", "invalid_archive"),
    ],
)
def test_safe_extract_refuses_and_leaves_nothing(
    tmp_path: Path, fmt: str, data: bytes, code: str
) -> None:
    archive = tmp_path / "m.archive"
    archive.write_bytes(data)
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, fmt, dest, **LIMITS)
    assert info.value.code == code
    assert not (tmp_path / "escape.txt").exists()
    assert not dest.exists() or list(dest.iterdir()) == []


def test_safe_extract_enforces_member_count(tmp_path: Path) -> None:
    archive = tmp_path / "m.zip"
    archive.write_bytes(zip_bytes({**model_files(), **{f"x/{i}": b"" for i in range(70)}}))
    with pytest.raises(ArchiveError, match="more than 64 members"):
        safe_extract(archive, "zip", tmp_path / "out", **LIMITS)
