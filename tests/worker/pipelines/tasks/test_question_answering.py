"""The question-answering task: reading, windows, collation, losses, the SQuAD metric, the
n-best search, parity, and a tiny BertForQuestionAnswering end to end."""

from __future__ import annotations

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
from app.services.squad_format import QAExample
from app.settings import Settings
from app.storage import LocalStore
from tests.factories.datasets import OneDataset as Lookup
from tests.factories.tiny_bert import minilm_dir, tiny_bert_config
from worker.job_store import DatasetRecord
from worker.pipelines.errors import DatasetInvalid, DatasetUnavailable, UnsupportedSpec
from worker.pipelines.tasks import get_task
from worker.pipelines.tasks.base import TaskData, pad_outputs, split_outputs
from worker.pipelines.tasks.question_answering import (
    TASK,
    EvalWindow,
    TrainWindow,
    doc_stride,
)
from worker.pipelines.tasks.squad_data import split_by_context
from worker.pipelines.tasks.squad_metric import (
    Span,
    exact_match,
    f1,
    normalize_answer,
    squad_scores,
    window_span,
)

CPU = torch.device("cpu")
NAMES = ("start_logits", "end_logits")
# Each one token to the MiniLM tokenizer (checked in `context_of`)
# fmt: off
WORDS = [
    "time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child", "world",
    "school", "state", "family", "student", "group", "country", "problem", "hand", "part", "place",
    "case", "week", "company", "system", "program", "question", "work", "government", "number",
    "night", "point", "home", "water", "room", "mother", "area", "money", "story", "fact", "month",
    "lot", "right", "study", "book", "eye", "job", "word", "business", "issue", "side", "kind",
    "head", "house", "service", "friend", "father", "power", "hour", "game", "line", "end",
    "member", "law", "car", "city",
]
# fmt: on
QUESTION = "what animal?"  # what, animal, ?: 3 tokens


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def context_of(tokenizer: Any, answer_at: int, n: int = 60) -> tuple[str, int]:
    """n one-token words with "purple elephant" at word `answer_at`; (context, its char)."""
    words = [*WORDS[:answer_at], "purple", "elephant", *WORDS[answer_at : n - 2]]
    assert len(tokenizer.tokenize(" ".join(words))) == n
    context = " ".join(words)
    return context, context.index("purple")


def qa(qid: str, context: str, start: int, text: str = "purple elephant") -> QAExample:
    return QAExample(qid, QUESTION, context, (text,), (start,))


def spec(**kw: Any) -> DatasetSpec:
    return DatasetSpec(name="squad", **kw)


# --- the SQuAD metric -------------------------------------------------------------------------


def test_normalisation_as_the_official_script() -> None:
    assert normalize_answer("The  Quick, brown-fox!") == "quick brownfox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("Theater and Anakin") == "theater and anakin"  # whole words only
    assert normalize_answer("the.") == ""  # punctuation goes first, then the article


def test_exact_match_and_f1_by_hand() -> None:
    assert exact_match("The Denver Broncos!", "denver broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    # big red fox jumped / red fox ran: 2 common, P = 2/4, R = 2/3, F1 = 4/7
    assert f1("the big red fox jumped", "a red fox ran") == pytest.approx(4 / 7)
    # x x y / x y y: common min(2,1) + min(1,2) = 2, P = R = 2/3
    assert f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert f1("", "anything") == 0.0 and f1("cat", "dog") == 0.0


def test_scores_take_the_best_gold_answer_and_average_questions() -> None:
    em, f = squad_scores(
        ["Denver Broncos", "the cat", ""],
        [["Broncos", "Denver Broncos"], ["big cat sat"], ["x"]],
    )
    # EM 1, 0, 0; F1 1, (P 1, R 1/3: 0.5), 0
    assert em == pytest.approx(1 / 3)
    assert f == pytest.approx(0.5)


# --- the n-best search ------------------------------------------------------------------------

CONTEXT = "alpha beta gamma delta epsilon"
# Window 0: [CLS] q [SEP] alpha beta gamma [SEP]; window 1: [CLS] q [SEP] beta ... epsilon [SEP]
OFFSETS_0 = [None, None, None, (0, 5), (6, 10), (11, 16), None]
OFFSETS_1 = [None, None, None, (6, 10), (11, 16), (17, 22), (23, 30), None]


def window(offsets: list[tuple[int, int] | None], example: int = 0) -> EvalWindow:
    return EvalWindow(list(range(len(offsets))), None, example, offsets)


def logits(start: list[float], end: list[float]) -> dict[str, np.ndarray]:
    return {"start_logits": np.array(start, np.float32), "end_logits": np.array(end, np.float32)}


def two_windows() -> tuple[list[EvalWindow], list[dict[str, np.ndarray]]]:
    """The [CLS] and question tokens score highest (9) but are no context. Window 0's best:
    alpha..beta, 2 + 1 = 3. Window 1: start delta (3) with end beta (4) ends before it
    starts; delta..epsilon is 3 + 2.5 = 5.5, beta..beta 1 + 4 = 5."""
    outputs = [
        logits([9, 9, 0, 2, 0, 0, 0], [9, 0, 0, 0.5, 1, 0, 0]),
        logits([9, 9, 0, 1, 0, 3, 0.5, 0], [9, 0, 0, 4, 0, 0, 2.5, 0]),
    ]
    return [window(OFFSETS_0), window(OFFSETS_1)], outputs


def test_the_best_span_of_a_window() -> None:
    _, outputs = two_windows()
    out = outputs[1]
    assert window_span(out["start_logits"], out["end_logits"], OFFSETS_1) == Span(5.5, 17, 30)
    # One token at most: beta..beta (1 + 4 = 5) beats delta (3 + 0) and epsilon (0.5 + 2.5)
    short = window_span(out["start_logits"], out["end_logits"], OFFSETS_1, max_answer_length=1)
    assert short == Span(5.0, 6, 10)
    # Only the two best starts (delta 3, beta 1) and ends (beta 4, epsilon 2.5)
    assert window_span(out["start_logits"], out["end_logits"], OFFSETS_1, n_best=1) is None
    assert window_span(np.zeros(3), np.zeros(3), [None, None, None]) is None


def test_the_answer_in_the_second_window_wins() -> None:
    items, outputs = two_windows()
    examples = [QAExample("q", "which?", CONTEXT, ("delta epsilon", "delta"), (17, 17))]
    m = TASK.score(examples, items, outputs, spec(), [])
    assert (m.primary, m.values, m.n) == ("f1", {"exact_match": 1.0, "f1": 1.0}, 1)
    # max_answer_length 1: "beta" (window 1, 5.0) over window 0's alpha..alpha (2 + 0.5)
    m = TASK.score(examples, items, outputs, spec(max_answer_length=1), [])
    assert m.values == {"exact_match": 0.0, "f1": 0.0}
    assert m.as_dict()["primary_metric"] == {"name": "f1", "value": 0.0}


def test_a_question_without_a_valid_span_predicts_nothing() -> None:
    items = [window([None, None, None])]
    examples = [QAExample("q", "which?", CONTEXT, ("alpha",), (0,))]
    m = TASK.score(examples, items, [logits([1, 2, 3], [1, 2, 3])], spec(), [])
    assert m.values == {"exact_match": 0.0, "f1": 0.0} and m.n == 1


def test_agreement_counts_questions_with_the_same_span() -> None:
    items, outputs = two_windows()
    items += [window(OFFSETS_0, example=1)]
    outputs += [logits([0, 0, 0, 0, 3, 0, 0], [0, 0, 0, 0, 0, 3, 0])]  # beta gamma
    same = TASK.agree(items, outputs, outputs, "pytorch_fp32", spec())
    assert (same.agreement, same.max_abs_diff, same.n, same.unit) == (1.0, 0.0, 2, "questions")
    # Question 1's start moves to alpha (4 > 3): a different span; the largest change is 4
    moved = [*outputs[:2], logits([0, 0, 0, 4, 3, 0, 0], [0, 0, 0, 0, 0, 3, 0])]
    agreement = TASK.agree(items, outputs, moved, "onnx", spec())
    assert (agreement.agreement, agreement.max_abs_diff, agreement.n) == (0.5, 4.0, 2)
    assert agreement.as_dict()["reference"] == "onnx"


# --- windows ----------------------------------------------------------------------------------


def test_default_stride() -> None:
    assert doc_stride(spec(max_length=384)) == 128
    assert doc_stride(spec(max_length=512)) == 128
    assert doc_stride(spec(max_length=64)) == 21
    assert doc_stride(spec(max_length=64, doc_stride=10)) == 10


def test_train_windows_point_at_the_answer_tokens(tokenizer: Any) -> None:
    """60 context tokens, windows of 32 (26 context tokens after [CLS] what animal ? [SEP]
    and the last [SEP]) overlapping by 8: context tokens 0-25, 18-43, 36-59."""
    late, late_at = context_of(tokenizer, 50)  # in the third window only
    cut, cut_at = context_of(tokenizer, 25)  # words 25-26: past the first window's end
    items = TASK.items(tokenizer, [qa("a", late, late_at), qa("b", cut, cut_at)], spec(
        max_length=32, doc_stride=8), train=True)  # fmt: skip
    assert all(isinstance(w, TrainWindow) for w in items)
    assert [len(w.input_ids) for w in items] == [32, 32, 30, 32, 32, 30]
    positions = [(w.start_position, w.end_position) for w in items]
    # 5 tokens before the context: a's answer at 5 + (50 - 36), b's at 5 + (25 - 18)
    assert positions == [(0, 0), (0, 0), (19, 20), (0, 0), (12, 13), (0, 0)]
    for w, (s, e) in zip(items, positions, strict=True):
        if s:
            assert tokenizer.decode(w.input_ids[s : e + 1]) == "purple elephant"
        assert w.token_type_ids == [0] * 5 + [1] * (len(w.input_ids) - 5)
        assert tokenizer.decode(w.input_ids[:5]) == "[CLS] what animal? [SEP]"


def test_eval_windows_keep_their_example_and_context_offsets(tokenizer: Any) -> None:
    context, at = context_of(tokenizer, 50)
    items = TASK.items(tokenizer, [qa("a", context, at), qa("b", "a purple elephant", 2)],
                       spec(max_length=32, doc_stride=8), train=False)  # fmt: skip
    assert [w.example_index for w in items] == [0, 0, 0, 1]
    first, third, short = items[0], items[2], items[3]
    assert isinstance(first, EvalWindow)
    assert first.offsets[:5] == [None] * 5 and first.offsets[-1] is None
    assert first.offsets[5] == (0, len(WORDS[0]))  # the context's first word
    assert third.offsets[5 + 14] == (at, at + len("purple"))  # word 50 is the 15th of 36-59
    assert short.offsets == [None] * 5 + [(0, 1), (2, 8), (9, 17), None]


def test_a_long_question_is_cut_to_leave_room_for_the_stride(tokenizer: Any) -> None:
    """Windows of 32 with a stride of 8 hold a question of at most 32 - 3 - 8 - 1 = 20
    tokens; a longer one would make the tokenizer panic."""
    question = " ".join(WORDS[:40])
    ex = QAExample("q", question, " ".join(WORDS[:20]), ("time",), (0,))
    items = TASK.items(tokenizer, [ex], spec(max_length=32, doc_stride=8), train=False)
    ids = tokenizer(" ".join(WORDS[:20]), add_special_tokens=False)["input_ids"]
    for w in items:
        assert len(w.input_ids) <= 32
        assert w.input_ids[1:21] == ids and w.input_ids[21] == tokenizer.sep_token_id
    # 32 - 20 - 3 = 9 context tokens a window, 8 shared with the next: 12 windows for 20
    assert len(items) == 12
    assert len({o for w in items for o in w.offsets if o is not None}) == 20


def test_no_examples_no_windows(tokenizer: Any) -> None:
    assert TASK.items(tokenizer, [], spec(), train=True) == []


def test_a_stride_that_leaves_no_room_is_refused(tokenizer: Any) -> None:
    with pytest.raises(UnsupportedSpec, match="doc_stride 28 leaves no room"):
        TASK.items(tokenizer, [qa("a", "a purple elephant", 2)],
                   # (the spec's own check refuses it: the worker's is a second line)
                   spec(max_length=32).model_copy(update={"doc_stride": 28}),
                   train=False)  # fmt: skip


# --- collation --------------------------------------------------------------------------------


def test_collate_pads_on_the_right_with_the_tokenizers_pad_id() -> None:
    tok = SimpleNamespace(pad_token_id=7)
    items = [
        TrainWindow([1, 2, 3, 4, 5], [0, 0, 1, 1, 1], 3, 4),
        TrainWindow([1, 2, 3], [0, 0, 1], 0, 0),
    ]
    batch = TASK.collate(tok, items, 32, CPU)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [1, 2, 3, 7, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 0, 0]]
    assert batch["start_positions"].tolist() == [3, 0]
    assert batch["end_positions"].tolist() == [4, 0]
    assert all(t.dtype == torch.long for t in batch.values())


def test_collate_of_scoring_windows_without_token_types() -> None:
    items = [window([None, (0, 1)]), window([None, (0, 1), (2, 3)])]
    batch = TASK.collate(SimpleNamespace(pad_token_id=0), items, 32, CPU)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].tolist() == [[0, 1, 0], [0, 1, 2]]


# --- losses -----------------------------------------------------------------------------------

MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])


def batch_with(starts: list[int], ends: list[int]) -> dict[str, torch.Tensor]:
    return {"attention_mask": MASK, "start_positions": torch.tensor(starts),
            "end_positions": torch.tensor(ends)}  # fmt: skip


def random_logits(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(2, 4, generator=g) for k in ("start_logits", "end_logits")}


def hand_ce(logit_rows: torch.Tensor, targets: list[int], lengths: list[int]) -> torch.Tensor:
    """Cross-entropy over each row's first `length` logits, the mean over the rows."""
    terms = [
        torch.logsumexp(r[:n], 0) - r[t]
        for r, t, n in zip(logit_rows, targets, lengths, strict=True)
    ]
    return torch.stack(terms).mean()


def hand_kl(student: torch.Tensor, teacher: torch.Tensor, lengths: list[int], t: float) -> Any:
    terms = []
    for s, te, n in zip(student, teacher, lengths, strict=True):
        p = torch.softmax(te[:n] / t, 0)
        terms.append((p * (p.log() - torch.log_softmax(s[:n] / t, 0))).sum())
    return torch.stack(terms).mean()


def test_loss_is_the_mean_of_start_and_end_cross_entropy_over_real_tokens() -> None:
    out = random_logits(0)
    batch = batch_with([1, 2], [3, 0])
    expected = (hand_ce(out["start_logits"], [1, 2], [4, 3])
                + hand_ce(out["end_logits"], [3, 0], [4, 3])) / 2  # fmt: skip
    assert torch.allclose(TASK.loss(out, batch), expected)
    # The padded position takes no probability, whatever its logit
    out["start_logits"][1, 3] = out["end_logits"][1, 3] = 50.0
    assert torch.allclose(TASK.loss(out, batch), expected)


def test_distillation_against_a_hand_computation() -> None:
    student, teacher = random_logits(1), random_logits(2)
    batch = batch_with([1, 2], [3, 0])
    h, t = 0.3, 2.0
    kl = sum(hand_kl(student[k], teacher[k], [4, 3], t) for k in ("start_logits", "end_logits"))
    expected = (1 - h) * TASK.loss(student, batch) + h * t * t * kl / 2
    got = TASK.distill_loss(student, teacher, batch, hardness=h, temperature=t)
    assert torch.allclose(got, expected)
    soft = TASK.distill_loss(student, teacher, {"attention_mask": MASK}, hardness=1.0,
                             temperature=t)  # fmt: skip
    assert torch.allclose(soft, t * t * kl / 2)  # hardness 1 needs no positions


@pytest.mark.parametrize("value", [0.0, 1e4, -1e4, math.inf])
def test_teacher_values_at_padded_positions_change_nothing(value: float) -> None:
    student = {k: v.requires_grad_() for k, v in random_logits(3).items()}
    teacher = random_logits(4)
    batch = batch_with([1, 2], [3, 0])
    base = TASK.distill_loss(student, teacher, batch, hardness=0.5, temperature=0.5)
    changed = {k: v.clone() for k, v in teacher.items()}
    for v in changed.values():
        v[1, 3] = value
    loss = TASK.distill_loss(student, changed, batch, hardness=0.5, temperature=0.5)
    assert torch.allclose(loss, base)
    torch.autograd.backward(loss)
    for v in student.values():
        assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad[1, 3] == 0


def test_half_precision_padding_stays_out_of_the_distillation_term() -> None:
    """In float16, a padded position's log-probability can round to -inf (the lowest value
    less a large log-sum): it must still count for nothing, not make NaN."""
    student, teacher = random_logits(5), random_logits(6)
    for out in (student, teacher):
        out["start_logits"][:, 0] = 40.0  # log-sum-exp 80 at temperature 0.5
    half = {k: v.half() for k, v in student.items()}, {k: v.half() for k, v in teacher.items()}
    batch = {"attention_mask": MASK}
    got = TASK.distill_loss(*half, batch, hardness=1.0, temperature=0.5)
    want = TASK.distill_loss(student, teacher, batch, hardness=1.0, temperature=0.5)
    assert torch.isfinite(got) and torch.allclose(got.float(), want, rtol=1e-2, atol=1e-2)


# --- reading --------------------------------------------------------------------------------


def squad_doc(*paragraphs: tuple[str, list[tuple[str, str, int]]]) -> dict[str, Any]:
    """A SQuAD JSON document: paragraphs of (context, [(id, answer, start)])."""
    return {"data": [{"title": "T", "paragraphs": [
        {"context": c, "qas": [{"id": i, "question": "q?", "answers": [
            {"text": a, "answer_start": s}]} for i, a, s in qas]} for c, qas in paragraphs
    ]}]}  # fmt: skip


def load(name: str, data_dir: Path, lookup: Lookup | None = None, seed: int = 0) -> Any:
    return TASK.load(DatasetSpec(name=name), data_dir=data_dir, lookup=lookup or Lookup(),
                     store=LocalStore(data_dir / "store"), seed=seed)  # fmt: skip


def test_the_builtin_squad_from_a_data_dir(tmp_path: Path) -> None:
    folder = tmp_path / "squad"
    folder.mkdir()
    doc = squad_doc(("The cat sat.", [("a", "cat", 4), ("b", "sat", 8)]))
    (folder / "train.json").write_text(json.dumps(doc))
    (folder / "dev.json").write_text(json.dumps(squad_doc(("Dogs bark.", [("c", "bark", 5)]))))
    data = load("squad", tmp_path)
    assert [ex.id for ex in data.train] == ["a", "b"] and [ex.id for ex in data.dev] == ["c"]
    assert data.label_names == [] and data.name == "squad"
    (folder / "dev.json").write_text(json.dumps(squad_doc(("Dogs bark.", [("c", "bark", 4)]))))
    with pytest.raises(DatasetInvalid, match=r"squad/dev.json: line 1, field data\[0\]"):
        load("squad", tmp_path)
    (folder / "dev.json").unlink()
    with pytest.raises(DatasetUnavailable, match=r"squad/dev.json: the file .* is missing"):
        load("squad", tmp_path)


def test_unknown_and_missing_data_sets(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="'squad' not found under"):
        load("squad", tmp_path)
    with pytest.raises(DatasetUnavailable, match="'sst2' is not a question-answering data set"):
        load("sst2", tmp_path)
    with pytest.raises(DatasetUnavailable, match="unknown data set 'nope'"):
        load("nope", tmp_path)


def upload(tmp_path: Path, text: str, fmt: str = "jsonl") -> tuple[str, Lookup]:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "upload"
    src.write_text(text)
    obj = store.put_file(src)
    rec = record(uuid.uuid4(), fmt, obj.key)
    return str(rec.id), Lookup(rec)


def record(ds_id: uuid.UUID, fmt: str, key: str, task: str = "question_answering") -> DatasetRecord:
    return DatasetRecord(ds_id, fmt, key, [], [], "", [], 0, task=task)


def jsonl_rows(n_contexts: int, per_context: int) -> str:
    rows = []
    for c in range(n_contexts):
        context = f"context number {c} is here"
        for q in range(per_context):
            rows.append({"id": f"{c}-{q}", "question": "which?", "context": context,
                         "answers": {"text": ["number"], "answer_start": [8]}})  # fmt: skip
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_an_upload_is_split_by_context(tmp_path: Path) -> None:
    name, lookup = upload(tmp_path, jsonl_rows(20, 2))
    data = load(name, tmp_path, lookup)
    assert len(data.train) == 36 and len(data.dev) == 4  # 2 of the 20 contexts
    dev_contexts = {ex.context for ex in data.dev}
    assert len(dev_contexts) == 2 and not dev_contexts & {ex.context for ex in data.train}
    ids = [ex.id for ex in data.train]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))  # the file's order
    assert [ex.id for ex in load(name, tmp_path, lookup).dev] == [ex.id for ex in data.dev]
    others = {tuple(ex.id for ex in load(name, tmp_path, lookup, seed=s).dev) for s in range(5)}
    assert len(others) > 1  # the seed chooses


def test_one_context_is_split_by_question() -> None:
    examples = [QAExample(str(i), "q?", "one context", ("one",), (0,)) for i in range(20)]
    train, dev = split_by_context(examples, 0.1, seed=0)
    assert len(train) == 18 and len(dev) == 2
    assert sorted(int(ex.id) for ex in train + dev) == list(range(20))


def test_upload_faults(tmp_path: Path) -> None:
    name, lookup = upload(tmp_path, jsonl_rows(1, 1) + '{"id": "x"}\n')
    with pytest.raises(
        DatasetInvalid, match=f"data set {name}: line 2, field question: is missing"
    ):
        load(name, tmp_path, lookup)
    name, lookup = upload(tmp_path, jsonl_rows(1, 1))
    with pytest.raises(DatasetInvalid, match="needs at least two questions"):
        load(name, tmp_path, lookup)
    name, lookup = upload(tmp_path, "a,b\n1,2\n", fmt="csv")
    with pytest.raises(DatasetInvalid, match="is csv; question answering reads SQuAD JSON"):
        load(name, tmp_path, lookup)
    with pytest.raises(DatasetUnavailable, match="not found"):
        load(str(uuid.uuid4()), tmp_path, lookup)
    rec = lookup.rec
    assert rec is not None
    missing = Lookup(record(rec.id, "jsonl", "sha256/00/00/" + "0" * 64))
    with pytest.raises(DatasetUnavailable, match="missing from the store"):
        load(name, tmp_path, missing)
    other = Lookup(record(rec.id, "jsonl", rec.storage_key, task="sequence_classification"))
    with pytest.raises(DatasetInvalid, match="uploaded for sequence_classification, not q"):
        load(name, tmp_path, other)


def test_an_upload_in_squad_json(tmp_path: Path) -> None:
    doc = squad_doc(*[(f"text {c} here", [(f"{c}", "here", 6 + len(str(c)))]) for c in range(10)])
    name, lookup = upload(tmp_path, json.dumps(doc), fmt="squad")
    data = load(name, tmp_path, lookup)
    assert len(data.train) == 9 and len(data.dev) == 1


def test_the_real_squad_files_load() -> None:
    data_dir = Settings().data_dir
    if not (data_dir / "squad" / "train.json").is_file():
        pytest.skip(f"SQuAD not found at {data_dir}/squad")
    data = load("squad", data_dir)
    assert (len(data.train), len(data.dev)) == (11_877, 4_961)


# --- the task's facts -------------------------------------------------------------------------


def test_facts_and_heads() -> None:
    assert get_task("question_answering") is TASK
    assert [o.name for o in TASK.outputs] == ["start_logits", "end_logits"]
    assert all(o.per_token for o in TASK.outputs)
    assert (TASK.auto_class, TASK.min_agreement, TASK.facts.primary_metric) == (
        "AutoModelForQuestionAnswering", 0.995, "f1")  # fmt: skip
    data: TaskData[QAExample] = TaskData("squad", [], [], [])
    assert TASK.model_config(data) == {}
    assert TASK.head_fits({"architectures": ["BertForQuestionAnswering"]}, data)
    assert not TASK.head_fits({"architectures": ["BertForSequenceClassification"]}, data)
    assert not TASK.head_fits({}, data)


# --- end to end -------------------------------------------------------------------------------


def test_a_tiny_bert_for_question_answering_end_to_end(tokenizer: Any) -> None:
    from transformers import BertForQuestionAnswering

    torch.manual_seed(0)
    model = BertForQuestionAnswering(tiny_bert_config()).train(False)
    late, late_at = context_of(tokenizer, 50)
    examples = [qa("a", late, late_at), qa("b", "a purple elephant walked", 2)]
    s = spec(max_length=32, doc_stride=8)
    items = TASK.items(tokenizer, examples, s, train=False)
    batch = TASK.collate(tokenizer, items, s.max_length, CPU)
    with torch.no_grad():
        out = model(**batch)  # a scoring batch holds the model's inputs only
    arrays = {n: getattr(out, n).numpy() for n in NAMES}
    rows = split_outputs(TASK, arrays, batch["attention_mask"].numpy())
    assert [r["start_logits"].shape for r in rows] == [(32,), (32,), (30,), (10,)]
    metrics = TASK.score(examples, items, rows, s, [])
    assert metrics.n == 2 and 0.0 <= metrics.values["exact_match"] <= metrics.value <= 1.0
    assert TASK.agree(items, rows, rows, "self", s).agreement == 1.0


def test_tiny_bert_training_losses(tokenizer: Any) -> None:
    from transformers import BertForQuestionAnswering

    torch.manual_seed(0)
    model = BertForQuestionAnswering(tiny_bert_config())
    late, late_at = context_of(tokenizer, 50)
    examples = [qa("a", late, late_at), qa("b", "a purple elephant walked", 2)]
    s = spec(max_length=32, doc_stride=8)
    train = TASK.items(tokenizer, examples, s, train=True)
    batch = TASK.collate(tokenizer, train, s.max_length, CPU)
    student = {n: getattr(model(**batch), n) for n in NAMES}
    teacher = {n: v.detach() + torch.randn_like(v) for n, v in student.items()}
    # The teacher as a cache returns it: each row cut to its length, then zero-padded
    rows = [{n: teacher[n][i, : len(w.input_ids)] for n in NAMES} for i, w in enumerate(train)]
    cached = pad_outputs(TASK, rows, batch["input_ids"].shape[1])
    assert not torch.equal(cached["start_logits"], teacher["start_logits"])
    loss = TASK.distill_loss(student, cached, batch, hardness=0.5, temperature=2.0)
    direct = TASK.distill_loss(student, teacher, batch, hardness=0.5, temperature=2.0)
    assert torch.allclose(loss, direct)
    torch.autograd.backward(loss)
    assert model.qa_outputs.weight.grad is not None
    assert torch.isfinite(model.qa_outputs.weight.grad).all()
    # Without padding, the task's loss is BertForQuestionAnswering's own
    full = TASK.collate(tokenizer, [w for w in train if len(w.input_ids) == 32], 32, CPU)
    with torch.no_grad():
        hf = model(**full)
    assert torch.allclose(TASK.loss({n: getattr(hf, n) for n in NAMES}, full), hf.loss)


def test_a_few_large_contexts_are_split_by_question() -> None:
    examples = [QAExample(f"{c}-{q}", "q?", f"context {c}", ("context",), (0,))
                for c in range(2) for q in range(50)]  # fmt: skip
    train, dev = split_by_context(examples, 0.1, seed=0)
    assert (len(train), len(dev)) == (90, 10)  # not 50 / 50
