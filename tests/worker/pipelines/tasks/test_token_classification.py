"""The token-classification task: reading (built-in and uploaded), labels on first sub-tokens,
truncation, padding, the losses and the entity metric against hand computations, parity, the
head check, and a tiny BertForTokenClassification trained and scored end to end."""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from pathlib import Path
from types import SimpleNamespace
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
from worker.pipelines.tasks.base import IGNORE_INDEX, TaskData, pad_outputs, split_outputs
from worker.pipelines.tasks.entity_metric import entity_scores
from worker.pipelines.tasks.token_classification import TASK, Sentence, TokenItem

NAMES = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
ID = {n: i for i, n in enumerate(NAMES)}
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tok() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def sentence(pairs: str) -> Sentence:
    """ "Peter/B-PER Blackburn/I-PER said/O" -> a Sentence."""
    words, tags = zip(*(p.rsplit("/", 1) for p in pairs.split()), strict=True)
    return Sentence(tuple(words), tuple(ID[t] for t in tags))


def spec(**kw: Any) -> DatasetSpec:
    return DatasetSpec(name=kw.pop("name", "conll2003"), **kw)


def logits_for(item: TokenItem, word_tags: list[str], other: str = "O") -> np.ndarray:
    """Logits whose argmax at each word's first sub-token is its tag (elsewhere `other`)."""
    out = np.zeros((len(item.input_ids), len(NAMES)), dtype=np.float32)
    out[:, ID[other]] = 1.0
    seen: set[int] = set()
    for pos, word in enumerate(item.word_ids):
        if word is not None and word not in seen:
            seen.add(word)
            out[pos] = 0.0
            out[pos, ID[word_tags[word]]] = 1.0
    return out


# --- the metric ----------------------------------------------------------------------------


def test_entity_f1_by_hand(tok: Any) -> None:
    examples = [sentence("Peter/B-PER Blackburn/I-PER visited/O Paris/B-LOC"),
                sentence("Reuters/B-ORG said/O")]  # fmt: skip
    # Predicted: PER and LOC right; Reuters as LOC (wrong type); "said" as MISC (spurious)
    predicted = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "B-MISC"]]
    items = TASK.items(tok, examples, spec(), train=False)
    outputs = [{"logits": logits_for(it, p)} for it, p in zip(items, predicted, strict=True)]
    m = TASK.score(examples, items, outputs, spec(), NAMES)
    # 3 gold entities, 4 predicted, 2 right: P = 2/4, R = 2/3, F1 = 2PR/(P+R) = 4/7
    assert m.primary == "entity_f1" and m.n == 2
    assert m.values["entity_precision"] == pytest.approx(0.5)
    assert m.values["entity_recall"] == pytest.approx(2 / 3)
    assert m.value == pytest.approx(4 / 7)
    assert m.values["token_accuracy"] == pytest.approx(4 / 6)  # both words of sentence 2 wrong
    per = m.details["per_type"]
    assert per["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert per["LOC"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert per["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert per["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert list(per) == ["LOC", "MISC", "ORG", "PER"]


def test_metric_reads_tags_as_conlleval() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    # An I- after O starts an entity (conlleval); a wrong boundary is a wrong entity.
    ev = entity_scores(gold, [["I-PER", "I-PER", "O", "B-LOC"]])
    assert (ev.precision, ev.recall, ev.f1) == (1.0, 1.0, 1.0)
    ev = entity_scores(gold, [["B-PER", "O", "O", "B-LOC"]])
    assert (ev.precision, ev.recall) == (0.5, 0.5) and ev.accuracy == 0.75
    ev = entity_scores([["O"]], [["O"]], ["PER"])  # nothing to find, nothing found: 0, no NaN
    assert (ev.f1, ev.per_type["PER"]["support"]) == (0.0, 0)


# --- items, truncation, padding ------------------------------------------------------------


def test_labels_on_first_sub_tokens(tok: Any) -> None:
    ex = sentence("Blackburn/B-PER unbelievably/O Paris/B-LOC")
    [item] = TASK.items(tok, [ex], spec(), train=True)
    pieces = tok.convert_ids_to_tokens(item.input_ids)
    assert pieces == ["[CLS]", "blackburn", "un", "##bel", "##ie", "##va", "##bly", "paris",
                      "[SEP]"]  # fmt: skip
    assert item.word_ids == [None, 0, 1, 1, 1, 1, 1, 2, None]
    x = IGNORE_INDEX
    assert item.labels == [x, ID["B-PER"], ID["O"], x, x, x, x, ID["B-LOC"], x]
    assert item.token_type_ids == [0] * 9


def test_truncated_and_vanished_words_are_predicted_o(tok: Any) -> None:
    # max_length 8: [CLS], six words, [SEP]; "Paris" is cut off. U+200B has no sub-token.
    ex = sentence("a/O \u200b/B-MISC b/O c/O d/O e/O f/O Paris/B-LOC")
    [item] = TASK.items(tok, [ex], spec(max_length=8), train=False)
    assert len(item.input_ids) == 8 and item.input_ids[-1] == tok.sep_token_id
    assert item.word_ids == [None, 0, 2, 3, 4, 5, 6, None]
    gold = ["O", "B-MISC", "O", "O", "O", "O", "O", "B-LOC"]
    m = TASK.score([ex], [item], [{"logits": logits_for(item, gold)}], spec(), NAMES)
    # Every word the item holds is right; both entities are missed and nothing is predicted
    assert (m.values["entity_recall"], m.values["entity_precision"]) == (0.0, 0.0)
    assert m.values["token_accuracy"] == pytest.approx(6 / 8)


def test_collate_pads_right(tok: Any) -> None:
    items = TASK.items(tok, [sentence("Blackburn/B-PER unbelievably/O"), sentence("x/O")],
                       spec(), train=True)  # fmt: skip
    batch = TASK.collate(SimpleNamespace(pad_token_id=7), items, 16, CPU)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"][1].tolist() == [*items[1].input_ids, 7, 7, 7, 7, 7]
    assert batch["attention_mask"].tolist() == [[1] * 8, [1, 1, 1, 0, 0, 0, 0, 0]]
    assert batch["labels"][1].tolist() == [IGNORE_INDEX, 0, IGNORE_INDEX, *[IGNORE_INDEX] * 5]
    assert batch["token_type_ids"].tolist() == [[0] * 8, [0] * 8]
    no_types = [TokenItem(it.input_ids, None, it.labels, it.word_ids) for it in items]
    assert "token_type_ids" not in TASK.collate(tok, no_types, 16, CPU)
    with pytest.raises(ValueError, match="an item of 8 tokens"):
        TASK.collate(tok, items, 4, CPU)


# --- losses --------------------------------------------------------------------------------


def test_loss_by_hand() -> None:
    logits = torch.tensor([[[5.0, -5.0], [2.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 0, 1, IGNORE_INDEX]])
    # -log softmax at the labelled positions: log(1 + e^-2) and log(1 + e^-1), averaged
    want = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert TASK.loss({"logits": logits}, {"labels": labels}).item() == pytest.approx(want)
    none = torch.full_like(labels, IGNORE_INDEX)
    assert TASK.loss({"logits": logits}, {"labels": none}).item() == 0.0


def _kl(teacher: list[float], student: list[float], t: float) -> float:
    p = np.exp(np.array(teacher) / t) / np.exp(np.array(teacher) / t).sum()
    q = np.exp(np.array(student) / t) / np.exp(np.array(student) / t).sum()
    return float((p * np.log(p / q)).sum())


def test_distill_loss_by_hand_over_real_tokens_only() -> None:
    s = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]])
    t = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]])  # zero-padded, as from a cache
    batch = {"attention_mask": torch.tensor([[1, 1, 0]]), "labels": torch.tensor([[0, 1, -100]])}
    kl = 4.0 * (_kl([0, 1], [1, 0], 2.0) + _kl([1, 1], [0, 2], 2.0)) / 2  # T^2 * mean of 2
    ce = TASK.loss({"logits": s}, batch).item()
    got = TASK.distill_loss({"logits": s}, {"logits": t}, batch, hardness=0.25, temperature=2.0)
    assert got.item() == pytest.approx(0.75 * ce + 0.25 * kl)
    hard = TASK.distill_loss({"logits": s}, {"logits": t}, batch, hardness=1.0, temperature=2.0)
    assert hard.item() == pytest.approx(kl)
    for junk in (1e4, float("nan")):  # what the padding holds never matters
        t2, s2 = t.clone(), s.clone()
        t2[0, 2], s2[0, 2] = junk, -junk
        again = TASK.distill_loss({"logits": s2}, {"logits": t2}, batch, hardness=1.0,
                                  temperature=2.0)  # fmt: skip
        assert again.item() == pytest.approx(kl)


# --- parity, config, head ------------------------------------------------------------------


def test_agreement_counts_first_sub_tokens(tok: Any) -> None:
    [item] = TASK.items(tok, [sentence("Blackburn/B-PER unbelievably/O Paris/B-LOC")], spec(),
                        train=False)  # fmt: skip
    ref = logits_for(item, ["B-PER", "O", "B-LOC"])
    out = ref.copy()
    out[3] = 0.0
    out[3, ID["I-ORG"]] = 2.5  # a later sub-token: differs, but is not scored
    a = TASK.agree([item], [{"logits": out}], [{"logits": ref}], "pytorch_fp32", spec())
    assert (a.agreement, a.n, a.unit, a.max_abs_diff) == (1.0, 3, "tokens", 2.5)
    out[7] = ref[1]  # "paris" predicted B-PER
    a = TASK.agree([item], [{"logits": out}], [{"logits": ref}], "pytorch_fp32", spec())
    assert a.agreement == pytest.approx(2 / 3)


def data(names: list[str]) -> TaskData[Sentence]:
    return TaskData("x", [], [], names)


def test_model_config_and_head_fits() -> None:
    cfg = TASK.model_config(data(NAMES[:3]))
    assert cfg == {"num_labels": 3, "id2label": {0: "O", 1: "B-LOC", 2: "I-LOC"},
                   "label2id": {"O": 0, "B-LOC": 1, "I-LOC": 2}}  # fmt: skip
    arch = {"architectures": ["BertForTokenClassification"]}
    as_json = {str(k): v for k, v in cfg["id2label"].items()}
    assert TASK.head_fits({**arch, "id2label": as_json}, data(NAMES[:3]))
    swapped = {**as_json, "1": "I-LOC", "2": "B-LOC"}
    assert not TASK.head_fits({**arch, "id2label": swapped}, data(NAMES[:3]))
    generic = {str(i): f"LABEL_{i}" for i in range(3)}
    assert not TASK.head_fits({**arch, "id2label": generic}, data(NAMES[:3]))
    assert not TASK.head_fits({**arch, "id2label": {"0": "O", "2": "B-LOC"}}, data(NAMES[:2]))
    assert TASK.head_fits({**arch, "num_labels": 3}, data(NAMES[:3]))
    assert not TASK.head_fits({**arch, "num_labels": 2}, data(NAMES[:3]))
    seq = {"architectures": ["BertForSequenceClassification"], "id2label": as_json}
    assert not TASK.head_fits(seq, data(NAMES[:3]))


# --- loading -------------------------------------------------------------------------------


def load(ds: DatasetSpec, data_dir: Path, lookup: Lookup | None = None, seed: int = 0) -> Any:
    store = LocalStore(data_dir / "store")
    return TASK.load(ds, data_dir=data_dir, lookup=lookup or Lookup(), store=store, seed=seed)


def test_builtin_conll2003_from_a_data_dir(tmp_path: Path) -> None:
    folder = tmp_path / "conll2003"
    folder.mkdir()
    (folder / "train.txt").write_text("EU x I-ORG\nsaid x O\n\nPeter x I-PER\nParis x I-LOC\n")
    (folder / "dev.txt").write_text("-DOCSTART- -X- -X- O\n\nIan x I-PER\nB x B-PER\n")
    d = load(spec(), tmp_path)
    assert d.label_names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    tags = [[d.label_names[i] for i in s.labels] for s in d.train + d.dev]
    assert tags == [["B-ORG", "O"], ["B-PER", "B-LOC"], ["B-PER", "B-PER"]]  # IOB1 -> IOB2
    assert d.dev[0].words == ("Ian", "B")
    with pytest.raises(DatasetInvalid, match=r"train.txt: line 1: tag .I-ORG. does not"):
        load(spec(tag_scheme="IOB2"), tmp_path)
    (folder / "dev.txt").unlink()
    with pytest.raises(DatasetUnavailable, match=r"dev\.txt is missing"):
        load(spec(), tmp_path)
    with pytest.raises(DatasetUnavailable, match="no token classification data set"):
        load(spec(name="sst2"), tmp_path)


def upload(tmp_path: Path, rows: list[dict[str, Any]], labels: list[str], fmt: str = "jsonl",
           label_column: str = "", **rec: Any) -> Lookup:  # fmt: skip
    src = tmp_path / "up.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stored = LocalStore(tmp_path / "store").put_file(src)
    rec.setdefault("task", "token_classification")
    return Lookup(DatasetRecord(uuid.uuid4(), fmt, stored.key, [], [], label_column, labels,
                                len(rows), **rec))  # fmt: skip


def test_uploaded_jsonl_split_and_recorded_labels(tmp_path: Path) -> None:
    rows = [{"tokens": [f"w{i}", "Paris"], "ner": ["O", "I-LOC"]} for i in range(20)]
    lookup = upload(tmp_path, rows, ["O", "B-LOC", "I-LOC"], label_column="ner")
    assert lookup.rec is not None
    ds = spec(name=str(lookup.rec.id))
    d = load(ds, tmp_path, lookup)
    assert (len(d.train), len(d.dev), d.label_names) == (18, 2, ["O", "B-LOC", "I-LOC"])
    assert {s.labels for s in d.train + d.dev} == {(0, 1)}  # detected IOB1, converted
    order = [int(s.words[0][1:]) for s in d.train]
    assert order == sorted(order)  # the file's order, in both splits
    assert [s.words for s in load(ds, tmp_path, lookup).dev] == [s.words for s in d.dev]
    assert [s.words for s in load(ds, tmp_path, lookup, seed=1).dev] != [s.words for s in d.dev]
    with pytest.raises(DatasetInvalid, match=r"line 1, tags\[1\]: tag 'I-LOC' does not"):
        load(spec(name=ds.name, tag_scheme="IOB2"), tmp_path, lookup)
    with pytest.raises(DatasetInvalid, match=r"line 1, tags: missing"):
        load(spec(name=ds.name, tag_column="tags"), tmp_path, lookup)
    # The scheme the upload recorded is used when the spec names none (or "auto")
    rec = dataclasses.replace(lookup.rec, tag_scheme="IOB2")
    with pytest.raises(DatasetInvalid, match=r"line 1, tags\[1\]: tag 'I-LOC' does not"):
        load(spec(name=ds.name, tag_scheme="auto"), tmp_path, Lookup(rec))
    assert load(spec(name=ds.name, tag_scheme="IOB1"), tmp_path, Lookup(rec)).dev == d.dev


def test_uploaded_faults(tmp_path: Path) -> None:
    rows = [{"tokens": ["a", "Paris"], "tags": ["O", "B-LOC"]}] * 4
    stale = upload(tmp_path, rows, ["O", "LOC"])
    assert stale.rec is not None
    with pytest.raises(DatasetInvalid, match="upload the data set again"):
        load(spec(name=str(stale.rec.id)), tmp_path, stale)
    csv = upload(tmp_path, rows, ["O", "B-LOC", "I-LOC"], fmt="csv")
    assert csv.rec is not None
    with pytest.raises(DatasetInvalid, match=r"uploaded for token_classification \(csv\)"):
        load(spec(name=str(csv.rec.id)), tmp_path, csv)
    other = upload(tmp_path, rows, ["O", "B-LOC", "I-LOC"], task="sequence_classification")
    assert other.rec is not None
    with pytest.raises(DatasetInvalid, match="uploaded for sequence_classification"):
        load(spec(name=str(other.rec.id)), tmp_path, other)
    with pytest.raises(DatasetUnavailable, match="not found"):
        load(spec(name=str(uuid.uuid4())), tmp_path, csv)
    only_o = upload(tmp_path, [{"tokens": ["a"], "tags": ["O"]}] * 4, ["O"])
    assert only_o.rec is not None
    with pytest.raises(DatasetInvalid, match="every tag is O"):
        load(spec(name=str(only_o.rec.id)), tmp_path, only_o)


def test_real_conll2003_loads() -> None:
    data_dir = Settings().data_dir
    if not (data_dir / "conll2003" / "train.txt").is_file():
        pytest.skip(f"CoNLL-2003 not found under {data_dir}")
    d = load(spec(), data_dir)
    assert (len(d.train), len(d.dev), d.label_names) == (14_041, 3_250, NAMES)
    assert [NAMES[i] for i in d.train[0].labels] == ["B-ORG", "O", "B-MISC", "O", "O", "O",
                                                    "B-MISC", "O", "O"]  # fmt: skip


# --- end to end ----------------------------------------------------------------------------


def test_tiny_bert_trained_and_scored_end_to_end(tok: Any) -> None:
    from transformers import BertForTokenClassification

    examples = [sentence("Peter/B-PER Blackburn/I-PER visited/O Paris/B-LOC"),
                sentence("Reuters/B-ORG said/O unbelievably/O"),
                sentence("the/O European/B-ORG Commission/I-ORG")]  # fmt: skip
    torch.manual_seed(0)
    model = BertForTokenClassification(tiny_bert_config(num_labels=len(NAMES)))
    items = TASK.items(tok, examples, spec(), train=True)
    batch = TASK.collate(tok, items, 128, CPU)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = TASK.loss({"logits": model(**inputs).logits}, batch)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0] / 10
    model.eval()
    with torch.no_grad():
        logits = model(**inputs).logits
    rows = split_outputs(TASK, {"logits": logits.numpy()}, batch["attention_mask"].numpy())
    assert [r["logits"].shape for r in rows] == [(len(it.input_ids), 9) for it in items]
    m = TASK.score(examples, items, rows, spec(), NAMES)
    assert (m.value, m.values["token_accuracy"], m.n) == (1.0, 1.0, 3)
    assert m.details["per_type"]["ORG"]["support"] == 2
    assert TASK.agree(items, rows, rows, "self", spec()).agreement == 1.0
    teacher = pad_outputs(TASK, [{"logits": torch.from_numpy(r["logits"])} for r in rows],
                          batch["input_ids"].shape[1])  # fmt: skip
    kd = TASK.distill_loss({"logits": logits}, teacher, batch, hardness=1.0, temperature=2.0)
    assert kd.item() == pytest.approx(0.0, abs=1e-6)  # the model against its own outputs


def test_real_conll2003_dev_scored_from_perfect_logits(tok: Any) -> None:
    data_dir = Settings().data_dir
    if not (data_dir / "conll2003" / "dev.txt").is_file():
        pytest.skip(f"CoNLL-2003 not found under {data_dir}")
    d = load(spec(), data_dir)
    ds = spec(max_length=512)  # no dev sentence is longer: nothing is cut off
    items = TASK.items(tok, d.dev, ds, train=False)
    gold = [[NAMES[i] for i in ex.labels] for ex in d.dev]
    outputs = [{"logits": logits_for(it, g)} for it, g in zip(items, gold, strict=True)]
    m = TASK.score(d.dev, items, outputs, ds, NAMES)
    assert (m.value, m.values["token_accuracy"], m.n) == (1.0, 1.0, 3_250)
    support = {t: v["support"] for t, v in m.details["per_type"].items()}
    assert support == {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}  # the paper's
