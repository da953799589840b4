"""safe_extract: the worker unpacks uploaded models with it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from app.services.archives import ArchiveError, safe_extract
from tests.factories.archives import (
    hostile_shards_targz,
    model_files,
    targz_bytes,
    targz_with_special,
    zip_bytes,
)

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


def test_safe_extract_unpacks_reverse_ordered_shards(tmp_path: Path) -> None:
    archive = hostile_shards_targz(tmp_path / "h.tar.gz", 16, pad_bytes=8_000_000)
    root = safe_extract(archive, "tar.gz", tmp_path / "out", **LIMITS)
    shards = sorted(p.name for p in root.glob("model-*.safetensors"))
    assert shards == [f"model-{i:05d}-of-00016.safetensors" for i in range(1, 17)]
    assert all((root / s).stat().st_size == 500_000 for s in shards)
    assert (root / "config.json").is_file()


def targz_raw(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pax_member(name: str, comment_bytes: int) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.pax_headers = {"comment": "x" * comment_bytes}
    return info, b"{}"


@pytest.mark.parametrize(
    "entries",
    [[pax_member("config.json", 100_000_000)],
     [pax_member(f"f{i}.txt", 60_000) for i in range(20)]],
    ids=["one-of-100-mb", "twenty-of-60-kb"],
)  # fmt: skip
def test_huge_pax_headers_are_refused_before_they_are_read(
    tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    """tarfile reads a pax header whole and parses it record by record: 100 MB of it
    compresses to 100 KB."""
    data = targz_raw(entries)
    assert len(data) < 200_000
    (tmp_path / "m.tar.gz").write_bytes(data)
    with pytest.raises(ArchiveError, match="tar metadata headers over") as err:
        safe_extract(tmp_path / "m.tar.gz", "tar.gz", tmp_path / "out", **LIMITS)
    assert err.value.code == "unsafe_archive"


@pytest.mark.parametrize(
    ("names", "message"),
    [(["config.json", "config.json"], "same path twice"),
     (["a", "a/config.json"], "clashes with another member")],
    ids=["twice", "file-then-folder"],
)  # fmt: skip
def test_tar_members_that_collide_are_refused(
    tmp_path: Path, names: list[str], message: str
) -> None:
    (tmp_path / "m.tar.gz").write_bytes(targz_raw([(tarfile.TarInfo(n), b"{}") for n in names]))
    with pytest.raises(ArchiveError, match=message) as err:
        safe_extract(tmp_path / "m.tar.gz", "tar.gz", tmp_path / "out", **LIMITS)
    assert err.value.code == "unsafe_archive"
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_padding_that_inflates_over_100_times_is_refused(tmp_path: Path, fmt: str) -> None:
    files = {**model_files(), "pad.bin.txt": bytes(70_000_000)}
    data = zip_bytes(files) if fmt == "zip" else targz_bytes(files)
    assert len(data) < 700_000
    (tmp_path / "m").write_bytes(data)
    with pytest.raises(ArchiveError, match="more than 100 times its size") as err:
        safe_extract(tmp_path / "m", fmt, tmp_path / "out", max_members=64, max_total_bytes=10**9)
    assert err.value.code == "archive_too_large"
