"""The regression task: reading (STS-B, uploads), collation, losses, metrics and parity,
against values worked out by hand, and one forward pass of a tiny one-output BERT."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.schemas.job_spec import DatasetSpec
from app.settings import Settings
from app.storage import LocalStore
from tests.factories.datasets import OneDataset as Lookup
from tests.factories.tiny_bert import minilm_dir, tiny_bert_config
from worker.job_store import DatasetRecord
from worker.pipelines.errors import DatasetInvalid, DatasetUnavailable
from worker.pipelines.tasks import get_task
from worker.pipelines.tasks.base import (
    ItemOutputs,
    TaskData,
    model_inputs,
    output_tensors,
    split_outputs,
)
from worker.pipelines.tasks.regression import TASK, ScoredExample

STSB_DIR = Settings().data_dir / "stsb"
needs_stsb = pytest.mark.skipif(
    not STSB_DIR.is_dir(), reason=f"the STS-B files are not at {STSB_DIR} (DATA_DIR)"
)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """The textbook formula: sum of products of deviations over the root of the sums of
    squares."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    num = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return num / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def outs(values: Sequence[float], dtype: Any = np.float64) -> list[ItemOutputs]:
    """One ItemOutputs per item: a one-output head's logits, shape [1]."""
    return [{"logits": np.array([v], dtype=dtype)} for v in values]


def _load(
    spec: DatasetSpec, data_dir: Path, lookup: Lookup | None = None,
    store: LocalStore | None = None, seed: int = 0,
) -> TaskData[ScoredExample]:  # fmt: skip
    return TASK.load(
        spec, data_dir=data_dir, lookup=lookup or Lookup(),
        store=store or LocalStore(data_dir / "store"), seed=seed,
    )  # fmt: skip


def _upload(
    tmp_path: Path, content: str, fmt: str, text_cols: list[str], score_col: str
) -> tuple[Lookup, LocalStore, uuid.UUID]:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / f"data.{fmt}"
    src.write_text(content, encoding="utf-8")
    rec = DatasetRecord(
        id=uuid.uuid4(), format=fmt, storage_key=store.put_file(src).key, columns=[],
        text_columns=text_cols, label_column=score_col, labels=[], num_rows=0, task="regression",
    )  # fmt: skip
    return Lookup(rec), store, rec.id


def _write_stsb(data_dir: Path, train: str, dev: str) -> None:
    folder = data_dir / "stsb"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text(train, encoding="utf-8")
    (folder / "dev.tsv").write_text(dev, encoding="utf-8")


# --- the seam ------------------------------------------------------------------------------


def test_the_task_is_registered_with_its_facts() -> None:
    assert get_task("regression") is TASK
    assert TASK.facts.primary_metric == "spearman"
    assert [(o.name, o.per_token) for o in TASK.outputs] == [("logits", False)]
    assert TASK.auto_class == "AutoModelForSequenceClassification"
    assert TASK.min_agreement == 0.999


def test_model_config_and_head_fits() -> None:
    data = TaskData[ScoredExample]("stsb", [], [], [])
    assert data.num_labels == 0
    assert TASK.model_config(data) == {"num_labels": 1, "problem_type": "regression"}
    arch = ["BertForSequenceClassification"]
    assert TASK.head_fits({"architectures": arch, "num_labels": 1}, data)
    assert TASK.head_fits({"architectures": arch, "id2label": {"0": "LABEL_0"}}, data)
    assert TASK.head_fits(
        {"architectures": arch, "num_labels": 1, "problem_type": "regression"}, data
    )
    # two labels (also the default when neither is given), another head, no head
    assert not TASK.head_fits({"architectures": arch, "id2label": {"0": "a", "1": "b"}}, data)
    assert not TASK.head_fits({"architectures": arch}, data)
    assert not TASK.head_fits(
        {"architectures": ["BertForTokenClassification"], "num_labels": 1}, data
    )
    assert not TASK.head_fits({"architectures": ["BertModel"], "num_labels": 1}, data)
    assert not TASK.head_fits({"num_labels": 1}, data)
    # a one-logit classifier is not a regression head
    single = {"architectures": arch, "num_labels": 1, "problem_type": "single_label_classification"}
    assert not TASK.head_fits(single, data)


# --- reading -------------------------------------------------------------------------------


@needs_stsb
def test_stsb_reads_the_real_files_as_written() -> None:
    data = _load(DatasetSpec(name="stsb"), STSB_DIR.parent)
    assert data.name == "stsb" and data.label_names == []
    assert len(data.train) == 5_749 and len(data.dev) == 1_500
    assert data.train[0] == ScoredExample(
        "A plane is taking off.", "An air plane is taking off.", 5.0
    )
    assert data.train[1].score == 3.8
    # a leading space and a mis-encoded apostrophe, kept (file lines 2043 and 4108)
    assert data.train[2041] == ScoredExample(
        "from the year prior.", " warmed.C from the year prior.", 3.0
    )
    assert (
        data.train[4106].text_pair == "Sylvester Stalloneâ€™s son, Sage Stallone, found dead in Hol"
    )
    scores = [ex.score for ex in data.train + data.dev]
    assert min(scores) == 0.0 and max(scores) == 5.0
    assert _load(DatasetSpec(name="stsb", score_range=[0, 5]), STSB_DIR.parent).train == data.train


@needs_stsb
def test_stsb_score_range_refusal_names_the_row() -> None:
    with pytest.raises(DatasetInvalid) as e:
        _load(DatasetSpec(name="stsb", score_range=[0.0, 4.5]), STSB_DIR.parent)
    assert e.value.message == (
        "stsb/train.tsv: row 1, column 'score': score 5 is outside the range [0, 4.5]"
    )


STSB_TRAIN = (
    "sentence1\tsentence2\tscore\n"
    'A "quoted" man.\t  Someone, indeed.\t4.25\n'
    "Dogs run.\tCats sleep.\t0\n"
)
STSB_DEV = "sentence1\tsentence2\tscore\nOne.\tTwo.\t 2.5\n"


def test_stsb_from_a_tmp_dir_keeps_quotes_and_spaces(tmp_path: Path) -> None:
    _write_stsb(tmp_path, STSB_TRAIN, STSB_DEV)
    data = _load(DatasetSpec(name="stsb"), tmp_path)
    assert data.train == [
        ScoredExample('A "quoted" man.', "  Someone, indeed.", 4.25),
        ScoredExample("Dogs run.", "Cats sleep.", 0.0),
    ]
    assert data.dev == [ScoredExample("One.", "Two.", 2.5)]


def test_stsb_columns_can_be_overridden(tmp_path: Path) -> None:
    _write_stsb(tmp_path, STSB_TRAIN, STSB_DEV)
    data = _load(DatasetSpec(name="stsb", text_columns=["sentence2"]), tmp_path)
    assert data.train[0] == ScoredExample("  Someone, indeed.", None, 4.25)
    with pytest.raises(DatasetInvalid, match=r"stsb/train.tsv: missing column\(s\) similarity"):
        _load(DatasetSpec(name="stsb", score_column="similarity"), tmp_path)


def test_stsb_score_range_and_bad_scores_name_the_row(tmp_path: Path) -> None:
    _write_stsb(tmp_path, STSB_TRAIN, STSB_DEV + "Three.\tFour.\tn/a\n")
    with pytest.raises(DatasetInvalid) as e:
        _load(DatasetSpec(name="stsb", score_range=[1, 5]), tmp_path)
    assert e.value.message == (
        "stsb/train.tsv: row 2, column 'score': score 0 is outside the range [1, 5]"
    )
    with pytest.raises(DatasetInvalid) as e:
        _load(DatasetSpec(name="stsb"), tmp_path)
    assert e.value.message == "stsb/dev.tsv: row 2, column 'score': score 'n/a' is not a number"


def test_unknown_and_missing_data_sets_are_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="'stsb' not found"):
        _load(DatasetSpec(name="stsb"), tmp_path)
    with pytest.raises(DatasetUnavailable, match="is a sequence_classification data set"):
        _load(DatasetSpec(name="sst2"), tmp_path)
    with pytest.raises(DatasetUnavailable, match="unknown data set 'imdb'"):
        _load(DatasetSpec(name="imdb"), tmp_path)
    with pytest.raises(DatasetUnavailable, match="not found"):
        _load(DatasetSpec(name=str(uuid.uuid4())), tmp_path)


def test_uploaded_csv_with_a_split_column(tmp_path: Path) -> None:
    content = (
        "a,b,score,split\n"
        "x0,y0,1.5,train\n"
        'x1,"y, 1", 2.5,dev\n'
        "x2,y2,0,validation\n"
        "x3,y3,4,TRAIN\n"
        "x4,y4,3.25, Test \n"
    )
    lookup, store, ds_id = _upload(tmp_path, content, "csv", ["a", "b"], "score")
    data = _load(DatasetSpec(name=str(ds_id)), tmp_path, lookup, store)
    assert data.name == str(ds_id) and data.label_names == []
    assert data.train == [ScoredExample("x0", "y0", 1.5), ScoredExample("x3", "y3", 4.0)]
    assert data.dev == [
        ScoredExample("x1", "y, 1", 2.5),
        ScoredExample("x2", "y2", 0.0),
        ScoredExample("x4", "y4", 3.25),
    ]
    # the spec's columns override the recorded ones
    single = _load(DatasetSpec(name=str(ds_id), text_columns=["b"]), tmp_path, lookup, store)
    assert single.train[0] == ScoredExample("y0", None, 1.5)


def test_uploaded_bad_score_and_range_name_the_line(tmp_path: Path) -> None:
    content = "t,score\na,1\nb,2\nc,oops\nd,9\n"
    lookup, store, ds_id = _upload(tmp_path, content, "csv", ["t"], "score")
    with pytest.raises(DatasetInvalid) as e:
        _load(DatasetSpec(name=str(ds_id)), tmp_path, lookup, store)
    assert (
        e.value.message == f"data set {ds_id}: line 4, column 'score': score 'oops' is not a number"
    )
    content = "t,score\na,1\nb,2\nc,3\nd,9\n"
    lookup, store, ds_id = _upload(tmp_path, content, "csv", ["t"], "score")
    with pytest.raises(DatasetInvalid) as e:
        _load(DatasetSpec(name=str(ds_id), score_range=[0, 5]), tmp_path, lookup, store)
    assert e.value.message == (
        f"data set {ds_id}: line 5, column 'score': score 9 is outside the range [0, 5]"
    )


def test_uploaded_jsonl_seeded_random_split(tmp_path: Path) -> None:
    rows = [{"q": f"q{i}", "sim": i / 4, "other": -i} for i in range(20)]
    content = "".join(json.dumps(r) + "\n" for r in rows)
    lookup, store, ds_id = _upload(tmp_path, content, "jsonl", ["q"], "sim")
    spec = DatasetSpec(name=str(ds_id))
    data = _load(spec, tmp_path, lookup, store, seed=3)
    assert len(data.train) == 18 and len(data.dev) == 2  # round(20 * 0.1)
    everything = sorted(data.train + data.dev, key=lambda ex: ex.score)
    assert everything == [ScoredExample(f"q{i}", None, i / 4) for i in range(20)]
    assert data.train == sorted(data.train, key=lambda ex: ex.score)  # original order kept
    assert _load(spec, tmp_path, lookup, store, seed=3).dev == data.dev
    other = DatasetSpec(name=str(ds_id), score_column="other")
    assert {ex.score for ex in _load(other, tmp_path, lookup, store).train} <= {
        float(-i) for i in range(20)
    }


# --- batches and losses --------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def test_collate_tokenises_like_classification_with_float_labels(minilm_tokenizer: Any) -> None:
    items = TASK.items(
        minilm_tokenizer,
        [ScoredExample("A man plays.", "Someone is playing a flute.", 3.8),
         ScoredExample("Dogs.", "Cats.", 0.25)],
        DatasetSpec(name="stsb"),
        train=True,
    )  # fmt: skip
    batch = TASK.collate(minilm_tokenizer, items, 16, torch.device("cpu"))
    enc = minilm_tokenizer(
        ["A man plays.", "Dogs."], ["Someone is playing a flute.", "Cats."],
        padding=True, truncation=True, max_length=16, return_tensors="pt",
    )  # fmt: skip
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(batch[k], enc[k])
    assert batch["token_type_ids"][0].max() == 1  # the pair is encoded as a pair
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == [pytest.approx(3.8), 0.25]
    single = TASK.collate(
        minilm_tokenizer, [ScoredExample("Dogs.", None, 1.0)], 16, torch.device("cpu")
    )
    assert single["token_type_ids"].max() == 0


def test_loss_is_the_mse_of_the_first_logit() -> None:
    logits = torch.tensor([[1.0], [2.0], [0.0]])
    labels = torch.tensor([0.5, 2.5, 1.0])
    # (0.5^2 + 0.5^2 + 1^2) / 3
    assert TASK.loss({"logits": logits}, {"labels": labels}).item() == pytest.approx(0.5)


def test_distill_loss_mixes_gold_and_teacher_mse_without_temperature() -> None:
    student = torch.tensor([[1.0], [2.0], [0.0]], requires_grad=True)
    teacher = torch.tensor([[1.5], [2.0], [-1.0]], requires_grad=True)
    batch = {"labels": torch.tensor([0.5, 2.5, 1.0])}
    gold, soft = 0.5, (0.25 + 0.0 + 1.0) / 3  # MSE against the labels, against the teacher

    def dl(h: float, t: float = 2.0) -> torch.Tensor:
        return TASK.distill_loss(
            {"logits": student}, {"logits": teacher}, batch, hardness=h, temperature=t
        )

    assert dl(0.25).item() == pytest.approx(0.75 * gold + 0.25 * soft)
    assert dl(0.25, t=7.0).item() == pytest.approx(dl(0.25, t=1.0).item())
    assert dl(0.0).item() == pytest.approx(gold)
    assert dl(1.0).item() == pytest.approx(soft)
    torch.autograd.backward(dl(1.0))
    assert teacher.grad is None  # the teacher is a target, not trained
    # d/ds mean((s - t)^2) = 2 (s - t) / n
    assert student.grad is not None
    assert student.grad[:, 0].tolist() == pytest.approx([2 * -0.5 / 3, 0.0, 2 * 1.0 / 3])


# --- metrics -------------------------------------------------------------------------------

GOLD = [0.0, 1.0, 2.0, 2.0, 5.0]  # a tie
PRED = [0.5, 0.4, 2.5, 3.0, 4.0]


def test_score_pearson_spearman_mse_by_hand() -> None:
    examples = [ScoredExample(f"s{i}", None, g) for i, g in enumerate(GOLD)]
    m = TASK.score(examples, examples, outs(PRED, np.float32), DatasetSpec(name="stsb"), [])
    # Pearson: gold deviations (-2, -1, 0, 0, 3), prediction deviations from 2.08
    # (-1.58, -1.68, 0.42, 0.92, 1.92): 10.6 / sqrt(14 * 10.028)
    assert pearson(PRED, GOLD) == pytest.approx(10.6 / math.sqrt(14 * 10.028))
    assert m.values["pearson"] == pytest.approx(10.6 / math.sqrt(14 * 10.028), rel=1e-6)
    # Spearman: the Pearson correlation of the ranks, tied gold scores sharing rank 3.5:
    # gold ranks (1, 2, 3.5, 3.5, 5), prediction ranks (2, 1, 3, 4, 5): 8.5 / sqrt(9.5 * 10)
    assert pearson([2, 1, 3, 4, 5], [1, 2, 3.5, 3.5, 5]) == pytest.approx(8.5 / math.sqrt(95))
    assert m.values["spearman"] == pytest.approx(8.5 / math.sqrt(95), rel=1e-9)
    # MSE: (0.25 + 0.36 + 0.25 + 1 + 1) / 5
    assert m.values["mse"] == pytest.approx(0.572, rel=1e-6)
    assert m.primary == "spearman" and m.value == m.values["spearman"] and m.n == 5
    assert m.as_dict()["primary_metric"] == {"name": "spearman", "value": m.value}


def test_constant_predictions_correlate_zero_not_nan() -> None:
    examples = [ScoredExample(f"s{i}", None, g) for i, g in enumerate(GOLD)]
    m = TASK.score(examples, examples, outs([2.0] * 5), DatasetSpec(name="stsb"), [])
    assert m.values["pearson"] == 0.0 and m.values["spearman"] == 0.0
    assert m.values["mse"] == pytest.approx((4 + 1 + 0 + 0 + 9) / 5)
    flat = [ScoredExample("s", None, 3.0)] * 5
    assert (
        TASK.score(flat, flat, outs(PRED), DatasetSpec(name="stsb"), []).values["spearman"] == 0.0
    )
    with pytest.raises(ValueError, match="4 predictions against 5 scores"):
        TASK.score(examples, examples, outs(PRED[:4]), DatasetSpec(name="stsb"), [])


# --- parity --------------------------------------------------------------------------------

REFERENCE = [0.1, 0.5, 0.9, 1.3, 2.0]


def _agree(outputs: list[ItemOutputs], reference: list[ItemOutputs]) -> Any:
    return TASK.agree(outputs, outputs, reference, "pytorch_fp32", DatasetSpec(name="stsb"))


def test_agree_on_equal_outputs() -> None:
    a = _agree(outs(REFERENCE), outs(REFERENCE))
    assert a.agreement == pytest.approx(1.0) and a.max_abs_diff == 0.0
    assert (a.reference, a.n, a.unit) == ("pytorch_fp32", 5, "examples")
    assert a.as_dict()["pearson"] == a.agreement


def test_agree_on_near_equal_outputs_is_their_correlation() -> None:
    noise = [5e-5, -5e-5, 1e-4, 0.0, -1e-4]
    near = [r + d for r, d in zip(REFERENCE, noise, strict=True)]
    a = _agree(outs(near), outs(REFERENCE))
    # every example within 1e-4 + 1e-3 * |reference|: the correlation decides
    assert a.extra["close_fraction"] == 1.0
    assert a.agreement == pytest.approx(pearson(near, REFERENCE), rel=1e-12)
    assert TASK.min_agreement <= a.agreement < 1.0
    assert a.extra["pearson"] == a.agreement
    assert a.max_abs_diff == pytest.approx(1e-4)
    off = [r + d for r, d in zip(REFERENCE, [1e-3, -1e-3, 2e-3, 0.0, -2e-3], strict=True)]
    b = _agree(outs(off), outs(REFERENCE))  # correlated at 0.9999, but 3 of 5 too far
    assert b.extra["pearson"] > TASK.min_agreement and b.agreement == 0.4
    scrambled = [REFERENCE[i] for i in (1, 0, 4, 2, 3)]
    assert _agree(outs(scrambled), outs(REFERENCE)).agreement < TASK.min_agreement


def test_agree_refuses_a_scaled_or_shifted_export_that_correlates_perfectly() -> None:
    for moved in ([2 * r for r in REFERENCE], [r + 0.5 for r in REFERENCE]):
        a = _agree(outs(moved), outs(REFERENCE))
        assert a.extra["pearson"] == pytest.approx(1.0)
        assert a.extra["close_fraction"] == 0.0 and a.agreement == 0.0


def test_agree_on_constant_outputs() -> None:
    same = _agree(outs([0.7] * 4), outs([0.7 + 5e-7, 0.7, 0.7, 0.7 - 5e-7]))
    assert same.agreement == 1.0 and same.extra == {"pearson": 1.0, "close_fraction": 1.0}
    apart = _agree(outs([0.7] * 4), outs([0.71] * 4))
    assert apart.agreement == 0.0 and apart.max_abs_diff == pytest.approx(0.01)
    # the exported model collapsed to one value where the reference varies
    collapsed = _agree(outs([1.0] * 5), outs(REFERENCE))
    assert collapsed.agreement == 0.0
    assert _agree(outs([0.3]), outs([0.3])).agreement == 1.0
    with pytest.raises(ValueError, match="4 outputs against 5 references"):
        _agree(outs(REFERENCE[:4]), outs(REFERENCE))


# --- a real forward pass -------------------------------------------------------------------


def test_tiny_bert_forward_pass_scored_end_to_end(minilm_tokenizer: Any, tmp_path: Path) -> None:
    from transformers import BertForSequenceClassification

    examples = [
        ScoredExample("A plane is taking off.", "An air plane is taking off.", 5.0),
        ScoredExample("A man is playing a flute.", "A man plays a large flute.", 3.8),
        ScoredExample("Three men are playing chess.", "Two men play chess.", 2.6),
        ScoredExample("A woman is dancing.", "A man is talking.", 0.0),
        ScoredExample("Dogs run.", "  Cats sleep in the warm sun all day.", 0.4),
    ]
    data = TaskData("stsb", examples, examples, [])
    config = tiny_bert_config(num_labels=1)
    config.update(TASK.model_config(data))
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.train(False)
    spec = DatasetSpec(name="stsb")
    items = TASK.items(minilm_tokenizer, examples, spec, train=False)
    batch = TASK.collate(minilm_tokenizer, items, 32, torch.device("cpu"))
    with torch.no_grad():
        out = output_tensors(TASK, model(**model_inputs(batch)))
    assert out["logits"].shape == (5, 1)
    rows = split_outputs(
        TASK, {k: v.numpy() for k, v in out.items()}, batch["attention_mask"].numpy()
    )
    # each example alone (no padding) predicts what its padded batch row does
    alone = []
    for ex in examples:
        one = TASK.collate(minilm_tokenizer, [ex], 32, torch.device("cpu"))
        with torch.no_grad():
            alone.append(float(model(**model_inputs(one)).logits[0, 0]))
    assert [float(r["logits"][0]) for r in rows] == pytest.approx(alone, abs=1e-5)
    m = TASK.score(examples, items, rows, spec, [])
    gold = [ex.score for ex in examples]
    assert m.n == 5
    assert m.values["pearson"] == pytest.approx(pearson(alone, gold), abs=1e-4)
    mse = sum((p - g) ** 2 for p, g in zip(alone, gold, strict=True)) / 5
    assert m.values["mse"] == pytest.approx(mse, rel=1e-4)
    assert TASK.agree(items, rows, rows, "pytorch_fp32", spec).agreement == pytest.approx(1.0)
    # training: the loss is the MSE of the batch and reaches the head
    model.train()
    loss = TASK.loss(output_tensors(TASK, model(**model_inputs(batch))), batch)
    assert loss.item() == pytest.approx(mse, rel=1e-4)
    torch.autograd.backward(loss)
    assert model.classifier.weight.grad is not None
    # the saved checkpoint is a head this task can use as it is
    model.save_pretrained(str(tmp_path / "model"))
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert TASK.head_fits(saved, data)


def test_an_upload_of_another_task_is_refused(tmp_path: Path) -> None:
    lookup, store, ds_id = _upload(tmp_path, "text,score\na,1.0\n", "csv", ["text"], "score")
    assert lookup.rec is not None
    lookup.rec = replace(lookup.rec, task="sequence_classification")
    with pytest.raises(DatasetInvalid, match="uploaded for sequence_classification, not regr"):
        TASK.load(DatasetSpec(name=str(ds_id)), data_dir=tmp_path, lookup=lookup, store=store,
                  seed=0)  # fmt: skip
