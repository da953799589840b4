"""SQuAD v1.1 scoring: the best answer span of a window (the usual n-best search over its
start and end logits), of a question (the best over its windows), and exact match / F1 as the
official `evaluate-v1.1.py` computes them (normalised text; token-overlap F1; the best over the
gold answers; the mean over questions), here as fractions in [0, 1] rather than percentages."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

N_BEST = 20  # start and end candidates per window
MAX_ANSWER_LENGTH = 30  # tokens, when the spec gives none

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)

# The character span of each context token of a window; None for every other token.
Offsets = Sequence[tuple[int, int] | None]


class ScoredWindow(Protocol):
    """What the search needs of a scoring window."""

    @property
    def example_index(self) -> int: ...

    @property
    def offsets(self) -> Offsets: ...


@dataclass(frozen=True)
class Span:
    """A predicted answer: context characters [start, end) and its start + end logit."""

    score: float
    start: int
    end: int


def window_span(
    start_logits: np.ndarray, end_logits: np.ndarray, offsets: Offsets, *,
    n_best: int = N_BEST, max_answer_length: int = MAX_ANSWER_LENGTH,
) -> Span | None:  # fmt: skip
    """The best span of one window: among the `n_best` highest start and the `n_best` highest
    end logits over context tokens, the pair with end >= start, at most `max_answer_length`
    tokens long, of the highest start + end logit (ties: the higher start, then end logit).
    None when no pair qualifies."""
    context = np.array([i for i, o in enumerate(offsets) if o is not None], dtype=np.int64)
    if context.size == 0:
        return None
    start = np.asarray(start_logits, dtype=np.float64)
    end = np.asarray(end_logits, dtype=np.float64)
    starts = context[np.argsort(-start[context], kind="stable")[:n_best]]
    ends = context[np.argsort(-end[context], kind="stable")[:n_best]]
    length = ends[None, :] - starts[:, None] + 1
    scores = np.where(
        (length >= 1) & (length <= max_answer_length),
        start[starts, None] + end[None, ends],
        -np.inf,
    )
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    if not np.isfinite(scores[i, j]):
        return None
    first, last = offsets[int(starts[i])], offsets[int(ends[j])]
    assert first is not None and last is not None  # context tokens only
    return Span(float(scores[i, j]), first[0], last[1])


def best_spans(
    windows: Sequence[ScoredWindow], outputs: Sequence[Mapping[str, np.ndarray]], *,
    start: str, end: str, max_answer_length: int = MAX_ANSWER_LENGTH,
) -> dict[int, Span | None]:  # fmt: skip
    """Each example's best span over its windows (by `window_span`; the first window's on a
    tie), from each window's outputs `start` and `end`."""
    if len(windows) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs for {len(windows)} windows")
    best: dict[int, Span | None] = {}
    for window, out in zip(windows, outputs, strict=True):
        span = window_span(
            out[start], out[end], window.offsets, max_answer_length=max_answer_length
        )
        if window.example_index not in best or _better(span, best[window.example_index]):
            best[window.example_index] = span
    return best


def _better(span: Span | None, than: Span | None) -> bool:
    return span is not None and (than is None or span.score > than.score)


def answer_texts(contexts: Sequence[str], spans: Mapping[int, Span | None]) -> list[str]:
    """Each example's predicted text ("" where no span qualified)."""
    out: list[str] = []
    for i, context in enumerate(contexts):
        span = spans.get(i)
        out.append(context[span.start : span.end] if span is not None else "")
    return out


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces: the official
    script's normalisation, in its order."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised texts (0 when they share no token)."""
    predicted, wanted = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(predicted) & Counter(wanted)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(wanted)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> tuple[float, float]:
    """(exact match, F1) over the questions, each the best over its gold answers."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} questions")
    if not predictions:
        return 0.0, 0.0
    em = sum(max(exact_match(p, g) for g in gs) for p, gs in zip(predictions, golds, strict=True))
    f = sum(max(f1(p, g) for g in gs) for p, gs in zip(predictions, golds, strict=True))
    return em / len(predictions), f / len(predictions)
