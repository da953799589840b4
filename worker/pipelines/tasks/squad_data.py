"""Question-answering data sets: the built-in `squad` (`<data_dir>/squad/train.json` and
`dev.json`) or an uploaded file in SQuAD JSON or JSONL, read strictly by
`app.services.squad_format`. An upload is one file: a seeded 90/10 split by context keeps the
questions of one context in the same split."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from app.catalog import BUILTIN_DATASETS
from app.schemas.job_spec import DatasetSpec
from app.services.squad_format import QAExample, QAFormat, QAFormatError, read_squad
from app.storage import ArtifactStore
from worker.pipelines.data import DEV_FRACTION, parse_uuid
from worker.pipelines.errors import DatasetInvalid, DatasetUnavailable
from worker.pipelines.tasks.base import DatasetLookup, TaskData

BUILTIN = "squad"
TASK_NAME = "question_answering"
UPLOAD_FORMATS = ("squad", "jsonl")


def read_file(path: Path, fmt: QAFormat, where: str) -> list[QAExample]:
    if not path.is_file():
        raise DatasetUnavailable(f"{where}: the file {path} is missing")
    try:
        return read_squad(path, fmt)
    except QAFormatError as e:
        raise DatasetInvalid(f"{where}: {e}") from e


def load_builtin(data_dir: Path) -> TaskData[QAExample]:
    folder = data_dir / BUILTIN
    if not folder.is_dir():
        raise DatasetUnavailable(f"built-in data set {BUILTIN!r} not found under {data_dir}")
    train, dev = BUILTIN_DATASETS[BUILTIN].files
    return TaskData(
        BUILTIN,
        read_file(folder / train, "squad", f"{BUILTIN}/{train}"),
        read_file(folder / dev, "squad", f"{BUILTIN}/{dev}"),
        [],
    )


def split_by_context(
    examples: Sequence[QAExample], dev_fraction: float, seed: int
) -> tuple[list[QAExample], list[QAExample]]:
    """A seeded shuffle of the distinct contexts puts contexts (at least one, never all) and
    their questions into dev until it holds about `dev_fraction` of the questions, so no
    context is in both splits. Where contexts are too few for that (one context, or dev would
    hold over twice the fraction: two contexts of 500 questions each), questions are split
    one by one. Both
    splits keep the file's order."""
    by_context = [ex.context for ex in examples]
    for keys in (by_context, [ex.id for ex in examples]):
        dev_keys = _dev_keys(keys, dev_fraction, seed)
        in_dev = sum(key in dev_keys for key in keys)
        if 0 < in_dev <= max(1, 2 * dev_fraction * len(keys)) or keys is not by_context:
            break
    train = [ex for ex, key in zip(examples, keys, strict=True) if key not in dev_keys]
    dev = [ex for ex, key in zip(examples, keys, strict=True) if key in dev_keys]
    return train, dev


def _dev_keys(keys: Sequence[str], dev_fraction: float, seed: int) -> set[str]:
    sizes: dict[str, int] = {}
    for key in keys:
        sizes[key] = sizes.get(key, 0) + 1
    groups = list(sizes)
    random.Random(seed).shuffle(groups)
    wanted = max(1, round(len(keys) * dev_fraction))
    dev: set[str] = set()
    taken = 0
    for key in groups[: len(groups) - 1]:  # never every group
        if taken >= wanted:
            break
        dev.add(key)
        taken += sizes[key]
    return dev


def load_uploaded(
    dataset_id: uuid.UUID, lookup: DatasetLookup, store: ArtifactStore, seed: int
) -> TaskData[QAExample]:
    where = f"data set {dataset_id}"
    rec = lookup.get_uploaded_dataset(dataset_id)
    if rec is None:
        raise DatasetUnavailable(f"uploaded {where} not found")
    if rec.task != TASK_NAME:
        raise DatasetInvalid(f"{where} was uploaded for {rec.task}, not {TASK_NAME}")
    if rec.format not in UPLOAD_FORMATS:
        raise DatasetInvalid(
            f"{where} is {rec.format}; question answering reads SQuAD JSON or JSONL"
        )
    if not store.exists(rec.storage_key):
        raise DatasetUnavailable(f"the file of {where} is missing from the store")
    fmt = cast(QAFormat, rec.format)
    examples = read_file(store.local_path(rec.storage_key), fmt, where)
    if len(examples) < 2:
        raise DatasetInvalid(f"{where}: needs at least two questions to make a dev split")
    train, dev = split_by_context(examples, DEV_FRACTION, seed)
    return TaskData(str(dataset_id), train, dev, [])


def read_dataset(
    spec: DatasetSpec, *, data_dir: Path, lookup: DatasetLookup, store: ArtifactStore, seed: int
) -> TaskData[QAExample]:
    """Both splits of the data set the spec names, whole."""
    if spec.name == BUILTIN:
        return load_builtin(data_dir)
    if (ds_id := parse_uuid(spec.name)) is not None:
        return load_uploaded(ds_id, lookup, store, seed)
    if spec.name in BUILTIN_DATASETS:
        raise DatasetUnavailable(f"{spec.name!r} is not a question-answering data set")
    raise DatasetUnavailable(f"unknown data set {spec.name!r}")
