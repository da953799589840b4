"""Token classification's scoring: word predictions from sub-token logits, the entity-level
scores of IOB2 tag sequences the CoNLL-2003 way (conlleval), and token-level parity.

A word's prediction is the argmax at its first sub-token; a word without one in the item (cut
off by truncation, or dropped whole by the tokenizer's normaliser) is predicted "O".

seqeval's default mode reproduces conlleval: an entity is a maximal run of one type, begun by
`B-X`, or by an `I-X` that follows `O` or another type. So a prediction that is not valid
IOB2 (an `I-X` after `O`) still counts as the entity it spells, as the CoNLL-2003 shared task
scored systems, rather than being dropped as seqeval's strict mode would. An entity is right
only when its type and both boundaries match the gold one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from seqeval.metrics import accuracy_score
from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

from worker.pipelines.tasks.base import Agreement, ItemOutputs

LOGITS = "logits"


def first_pieces(word_ids: Sequence[int | None]) -> dict[int, int]:
    """word -> the position of its first sub-token (words without one are absent)."""
    first: dict[int, int] = {}
    for pos, word in enumerate(word_ids):
        if word is not None and word not in first:
            first[word] = pos
    return first


def word_tags(
    word_ids: Sequence[int | None], logits: np.ndarray, n_words: int, names: Sequence[str]
) -> list[str]:
    """One predicted tag a word, from its first sub-token ("O" for a word without one)."""
    tags = ["O"] * n_words
    for word, pos in first_pieces(word_ids).items():
        tags[word] = names[int(logits[pos].argmax())]
    return tags


def token_agreement(
    items: Sequence[Any], outputs: Sequence[ItemOutputs], reference: Sequence[ItemOutputs],
    name: str,
) -> Agreement:  # fmt: skip
    """Argmax agreement at the first sub-tokens of the items' words (the scored positions);
    max |difference| over every logit of the real tokens."""
    same = total = 0
    diff = 0.0
    for it, a, b in zip(items, outputs, reference, strict=True):
        x, y = a[LOGITS], b[LOGITS]
        if x.shape != y.shape:
            raise ValueError(f"logits of shape {x.shape} against {y.shape}")
        pos = list(first_pieces(it.word_ids).values())
        same += int((x[pos].argmax(axis=-1) == y[pos].argmax(axis=-1)).sum())
        total += len(pos)
        if x.size:
            diff = max(diff, float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()))
    return Agreement(name, same / total if total else 1.0, diff, total, "tokens")


@dataclass(frozen=True)
class EntityScores:
    precision: float  # micro, over every entity
    recall: float
    f1: float
    accuracy: float  # of the tags, token by token
    per_type: dict[str, dict[str, Any]]  # type -> precision, recall, f1, support (gold count)


def _types(tags: Sequence[Sequence[str]]) -> set[str]:
    return {kind for kind, _, _ in get_entities([list(t) for t in tags])}


def entity_scores(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], types: Iterable[str] = ()
) -> EntityScores:
    """Scores of `pred` against `gold` (one tag list a sentence, equal lengths); `types` are
    reported even where neither side has one (all zero). A score with nothing to divide by
    (no gold or no predicted entity) is 0."""
    y_true, y_pred = [list(t) for t in gold], [list(t) for t in pred]
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    found = sorted(_types(y_true) | _types(y_pred))
    per_type = {t: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for t in types}
    if found:  # per type, in sorted type order (seqeval's)
        ps, rs, fs, ns = precision_recall_fscore_support(
            y_true, y_pred, average=None, zero_division=0
        )
        for t, pt, rt, ft, nt in zip(found, ps, rs, fs, ns, strict=True):
            per_type[t] = {"precision": float(pt), "recall": float(rt), "f1": float(ft),
                           "support": int(nt)}  # fmt: skip
    accuracy = float(accuracy_score(y_true, y_pred)) if any(y_true) else 0.0
    return EntityScores(float(p), float(r), float(f), accuracy, dict(sorted(per_type.items())))
