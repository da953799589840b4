"""Extractive question answering (SQuAD v1.1 style): the question and a window of its context
per row, start and end logits over the tokens, spans scored by exact match and F1.

Reading is `squad_data` (the built-in `squad` files, or an upload in SQuAD JSON or JSONL). A
long context becomes several overlapping windows (the fast tokenizer's overflow, `doc_stride`
tokens of overlap), tokenised once in `items`: training windows carry the answer's token span
(0/0, the [CLS] token, when the answer is not wholly inside), scoring windows their context
tokens' character offsets, so an example's answer is the best span over its windows
(`squad_metric`). Padded positions take no probability in the loss or the distillation term.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from app.catalog import TASK_FACTS
from app.schemas.job_spec import DatasetSpec
from app.services.squad_format import QAExample
from app.storage import ArtifactStore
from worker.pipelines.errors import ModelInvalid, UnsupportedSpec
from worker.pipelines.tasks import squad_data, squad_metric
from worker.pipelines.tasks.base import (
    Agreement,
    DatasetLookup,
    ItemOutputs,
    Metrics,
    Output,
    TaskData,
    blend,
    has_head,
    pad_inputs,
)

START, END = "start_logits", "end_logits"
DOC_STRIDE = 128  # tokens of overlap between windows, when the spec gives none


@dataclass(frozen=True, slots=True)
class Window:
    """One row: [CLS] question [SEP] a window of the context [SEP], unpadded."""

    input_ids: list[int]
    token_type_ids: list[int] | None  # None where the tokenizer makes none


@dataclass(frozen=True, slots=True)
class TrainWindow(Window):
    start_position: int  # the answer's first and last token; both 0 when it is not inside
    end_position: int


@dataclass(frozen=True, slots=True)
class EvalWindow(Window):
    example_index: int  # which example (question) of the scored list
    offsets: list[tuple[int, int] | None]  # each context token's characters; None elsewhere


# --- windows --------------------------------------------------------------------------------


def doc_stride(spec: DatasetSpec) -> int:
    """The spec's stride, else 128 tokens (a third of the default 384-token window) or a third
    of a shorter window."""
    return spec.doc_stride or min(DOC_STRIDE, spec.max_length // 3)


def fit_questions(tokenizer: Any, questions: Sequence[str], most: int) -> list[str]:
    """Each question cut, at a word boundary, to at most `most` tokens: the tokenizer refuses
    (a panic) a window whose question leaves no more than `doc_stride` context tokens."""
    enc = tokenizer(list(questions), add_special_tokens=False, return_offsets_mapping=True)
    out: list[str] = []
    for i, question in enumerate(questions):
        offsets = enc["offset_mapping"][i]
        if len(offsets) <= most:
            out.append(question)
            continue
        words = enc.word_ids(i)
        first = words.index(words[most])  # the first token of the first word dropped
        out.append(question[: offsets[first][0]].rstrip())
    return out


def encode(tokenizer: Any, examples: Sequence[QAExample], spec: DatasetSpec) -> Any:
    """The windows of every example, in one call of the fast tokenizer."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelInvalid("question answering needs a fast tokenizer (character offsets)")
    stride = doc_stride(spec)
    most = spec.max_length - tokenizer.num_special_tokens_to_add(pair=True) - stride - 1
    if most < 1:
        raise UnsupportedSpec(
            f"doc_stride {stride} leaves no room for a question in windows of "
            f"{spec.max_length} tokens"
        )
    questions = fit_questions(tokenizer, [ex.question.lstrip() for ex in examples], most)
    return tokenizer(
        questions,
        [ex.context for ex in examples],
        truncation="only_second",
        max_length=spec.max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def answer_tokens(
    sequence_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]], start: int, end: int
) -> tuple[int, int]:
    """The first and last token of characters [start, end) of the context, or (0, 0) when
    the window's context tokens do not hold them whole."""
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context or offsets[context[0]][0] > start or offsets[context[-1]][1] < end:
        return 0, 0
    first, last = context[0], context[-1]
    while first <= context[-1] and offsets[first][0] <= start:
        first += 1
    while last >= context[0] and offsets[last][1] >= end:
        last -= 1
    return first - 1, last + 1


def windows(
    tokenizer: Any, examples: Sequence[QAExample], spec: DatasetSpec, *, train: bool
) -> list[Window]:
    """Every example's windows, in order: training ones with the (first) answer's tokens,
    scoring ones with their example and context offsets."""
    if not examples:
        return []  # the tokenizer refuses an empty batch
    enc = encode(tokenizer, examples, spec)
    types = enc.get("token_type_ids")
    out: list[Window] = []
    for w, ids in enumerate(enc["input_ids"]):
        token_types = types[w] if types is not None else None
        index = enc["overflow_to_sample_mapping"][w]
        sequence_ids, offsets = enc.sequence_ids(w), enc["offset_mapping"][w]
        if train:
            start = examples[index].answer_starts[0]
            end = start + len(examples[index].answers[0])
            span = answer_tokens(sequence_ids, offsets, start, end)
            out.append(TrainWindow(ids, token_types, *span))
        else:
            context = [o if s == 1 else None for o, s in zip(offsets, sequence_ids, strict=True)]
            out.append(EvalWindow(ids, token_types, index, context))
    return out


# --- losses ---------------------------------------------------------------------------------


def mask_padding(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits with every padded position at the dtype's lowest value: no probability there."""
    return logits.masked_fill(attention_mask == 0, torch.finfo(logits.dtype).min)


def span_loss(
    outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """(CE(start) + CE(end)) / 2, as BertForQuestionAnswering computes it."""
    mask = batch["attention_mask"]
    start = F.cross_entropy(mask_padding(outputs[START], mask), batch["start_positions"])
    end = F.cross_entropy(mask_padding(outputs[END], mask), batch["end_positions"])
    return (start + end) / 2


def token_kl(
    student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)) over each window's real tokens, the mean
    over the windows. Whatever the teacher holds at padded positions counts for nothing."""
    t = temperature
    log_s = F.log_softmax(mask_padding(student / t, attention_mask), dim=-1)
    log_t = F.log_softmax(mask_padding(teacher.to(student.dtype) / t, attention_mask), dim=-1)
    kl = torch.where(attention_mask.bool(), log_t.exp() * (log_t - log_s), 0.0)
    return kl.sum(dim=-1).mean()


# --- parity --------------------------------------------------------------------------------


def logits_diff(outputs: Sequence[ItemOutputs], reference: Sequence[ItemOutputs]) -> float:
    diff = 0.0
    for a, b in zip(outputs, reference, strict=True):
        for name in (START, END):
            x, y = a[name].astype(np.float64), b[name].astype(np.float64)
            if x.shape != y.shape:
                raise ValueError(f"{name} of shape {x.shape} against {y.shape}")
            if x.size:
                diff = max(diff, float(np.abs(x - y).max()))
    return diff


# --- the task -------------------------------------------------------------------------------


class QuestionAnswering:
    facts = TASK_FACTS["question_answering"]
    outputs: tuple[Output, ...] = (Output(START, per_token=True), Output(END, per_token=True))
    auto_class = "AutoModelForQuestionAnswering"
    min_agreement = 0.995

    def load(
        self, spec: DatasetSpec, *, data_dir: Path, lookup: DatasetLookup,
        store: ArtifactStore, seed: int,
    ) -> TaskData[QAExample]:  # fmt: skip
        return squad_data.read_dataset(
            spec, data_dir=data_dir, lookup=lookup, store=store, seed=seed
        )

    def model_config(self, data: TaskData[Any]) -> dict[str, Any]:
        return {}  # a question-answering head has its two outputs by default

    def head_fits(self, config: Mapping[str, Any], data: TaskData[Any]) -> bool:
        return has_head(config, self.facts)

    def items(
        self, tokenizer: Any, examples: Sequence[Any], spec: DatasetSpec, *, train: bool
    ) -> list[Any]:
        return windows(tokenizer, examples, spec, train=train)

    def collate(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Right padding to the batch's longest window (windows are at most max_length)."""
        out = pad_inputs(tokenizer, items, device)
        if isinstance(items[0], TrainWindow):
            starts = [w.start_position for w in items]
            ends = [w.end_position for w in items]
            out["start_positions"] = torch.tensor(starts, dtype=torch.long, device=device)
            out["end_positions"] = torch.tensor(ends, dtype=torch.long, device=device)
        return out

    def loss(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        return span_loss(outputs, batch)

    def distill_loss(
        self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor],
        batch: Mapping[str, torch.Tensor], *, hardness: float, temperature: float,
    ) -> torch.Tensor:  # fmt: skip
        mask = batch["attention_mask"]
        kl_start = token_kl(student[START], teacher[START], mask, temperature)
        kl_end = token_kl(student[END], teacher[END], mask, temperature)
        soft = temperature**2 * (kl_start + kl_end) / 2
        return blend(hardness, soft, lambda: span_loss(student, batch))

    def score(
        self, examples: Sequence[Any], items: Sequence[Any], outputs: Sequence[ItemOutputs],
        spec: DatasetSpec, label_names: Sequence[str],
    ) -> Metrics:  # fmt: skip
        spans = best_spans(items, outputs, spec)
        texts = squad_metric.answer_texts([ex.context for ex in examples], spans)
        em, f1 = squad_metric.squad_scores(texts, [ex.answers for ex in examples])
        return Metrics("f1", {"exact_match": em, "f1": f1}, len(examples))

    def agree(
        self, items: Sequence[Any], outputs: Sequence[ItemOutputs],
        reference: Sequence[ItemOutputs], reference_name: str, spec: DatasetSpec,
    ) -> Agreement:  # fmt: skip
        """The fraction of questions whose best span is the same in both (the same characters
        of the context, hence the same text), and the largest logit difference."""
        ours, theirs = best_spans(items, outputs, spec), best_spans(items, reference, spec)
        same = sum(_where(ours[q]) == _where(theirs[q]) for q in ours)
        n = len(ours)
        diff = logits_diff(outputs, reference)
        return Agreement(reference_name, same / n if n else 1.0, diff, n, "questions")


def best_spans(
    items: Sequence[EvalWindow], outputs: Sequence[ItemOutputs], spec: DatasetSpec
) -> dict[int, squad_metric.Span | None]:
    longest = spec.max_answer_length or squad_metric.MAX_ANSWER_LENGTH
    return squad_metric.best_spans(items, outputs, start=START, end=END, max_answer_length=longest)


def _where(span: squad_metric.Span | None) -> tuple[int, int] | None:
    return (span.start, span.end) if span is not None else None


TASK = QuestionAnswering()
