"""Archives made with `tar czf m.tar.gz .` (members `./config.json`, and `.` itself) are
accepted, by the upload's scan and the worker's safe_extract alike; traversal, absolute paths,
links and devices behind a `./` are still refused."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from app.services.archives import ArchiveError, ArchiveScan, safe_extract
from app.services.model_inspect import inspect_archive
from tests.factories.archives import model_files, num_parameters

LIMITS = {"max_members": 64, "max_total_bytes": 10_000_000}


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def tar_czf_dot(src: Path, dest: Path) -> Path:
    """What a user runs in the model's folder: `tar czf m.tar.gz .`."""
    tar = shutil.which("tar")
    if tar is None:  # pragma: no cover - every CI image has tar
        pytest.skip("no tar on PATH")
    subprocess.run([tar, "czf", str(dest), "."], cwd=src, check=True)
    return dest


def dot_targz(dest: Path, entries: list[tarfile.TarInfo], files: dict[str, bytes]) -> Path:
    """`./`, then `entries` as given, then `./<name>` for each file."""
    with tarfile.open(dest, "w:gz") as tf:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        root.mode = 0o755
        tf.addfile(root)
        for info in entries:
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return dest


def special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_tar_czf_dot_lists_names_without_the_dot(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "m", {**model_files(), "sub/notes.txt": b"hi"})
    archive = tar_czf_dot(folder, tmp_path / "m.tar.gz")
    with tarfile.open(archive) as tf:
        raw = tf.getnames()
    assert "." in raw and "./config.json" in raw  # what tar itself writes
    with ArchiveScan(archive, "tar.gz", **LIMITS) as scan:
        names = [m.name for m, _ in scan]
    assert sorted(names) == sorted([*model_files(), "sub", "sub/notes.txt"])


def test_tar_czf_dot_is_inspected_and_extracted(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "m", model_files())
    archive = tar_czf_dot(folder, tmp_path / "m.tar.gz")
    info = inspect_archive(archive, "tar.gz", **LIMITS)
    assert info.num_parameters == num_parameters()
    root = safe_extract(archive, "tar.gz", tmp_path / "out", **LIMITS)
    assert root == (tmp_path / "out").resolve()
    for name, data in model_files().items():
        assert (root / name).read_bytes() == data


def test_dot_entries_of_a_zip_are_accepted_too(tmp_path: Path) -> None:
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("./", b"")
        for name, data in model_files().items():
            zf.writestr(f"./{name}", data)
    assert inspect_archive(archive, "zip", **LIMITS).num_parameters == num_parameters()
    root = safe_extract(archive, "zip", tmp_path / "out", **LIMITS)
    assert (root / "config.json").read_bytes() == model_files()["config.json"]


def test_root_entries_count_towards_the_member_limit(tmp_path: Path) -> None:
    roots = [special("./", tarfile.DIRTYPE) for _ in range(70)]
    archive = dot_targz(tmp_path / "m.tar.gz", roots, model_files())
    with pytest.raises(ArchiveError, match="more than 64 members") as err:
        safe_extract(archive, "tar.gz", tmp_path / "out", **LIMITS)
    assert err.value.code == "archive_too_large"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (special("./../escape.txt", tarfile.REGTYPE), "path traversal"),
        (special("./a/../../escape.txt", tarfile.REGTYPE), "path traversal"),
        (special("a/../../b", tarfile.REGTYPE), "path traversal"),
        (special("./..", tarfile.DIRTYPE), "path traversal"),
        (special("/etc/escape.txt", tarfile.REGTYPE), "absolute path"),
        (special("/", tarfile.DIRTYPE), "empty name"),  # tarfile reads "/" as ""
        (special("./link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (special("./hard", tarfile.LNKTYPE, "./config.json"), "is a link"),
        (special(".", tarfile.SYMTYPE, "/"), "empty name"),
        (special("./", tarfile.REGTYPE), "empty name"),
        (special("./null", tarfile.CHRTYPE), "special file"),
        (special("./disk", tarfile.BLKTYPE), "special file"),
        (special("./fifo", tarfile.FIFOTYPE), "special file"),
    ],
    ids=["dot-dotdot", "dot-a-up-up", "a-up-up", "dot-dotdot-dir", "absolute", "slash",
         "symlink", "hardlink", "dot-symlink", "dot-file", "chardev", "blockdev", "fifo"],
)  # fmt: skip
def test_unsafe_members_behind_a_dot_are_refused(
    tmp_path: Path, entry: tarfile.TarInfo, message: str
) -> None:
    archive = dot_targz(tmp_path / "m.tar.gz", [entry], model_files())
    with pytest.raises(ArchiveError, match=message) as err:
        inspect_archive(archive, "tar.gz", **LIMITS)
    assert err.value.code == "unsafe_archive"
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match=message):
        safe_extract(archive, "tar.gz", dest, **LIMITS)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_a_dot_name_and_the_plain_name_are_the_same_path(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name in ("./config.json", "config.json"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tf.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(ArchiveError, match="same path twice"):
        safe_extract(archive, "tar.gz", tmp_path / "out", **LIMITS)
