"""Token classification (named entities): one tag a word, scored by entity.

- Data: the built-in `conll2003` (`<data_dir>/conll2003/{train,dev}.txt`), or an uploaded CoNLL
  or JSONL file (`app.services.conll_format`) split seeded 90/10 by sentence, whose tags are
  `spec.tag_column`, else the upload's recorded label column, else the format's default. The
  scheme is `spec.tag_scheme`, else the one an upload recorded, else detected (CoNLL-2003
  reads as IOB1); tags become IOB2, and the labels (`tag_names`: "O", then B-/I- of each
  type) of an upload must be those it recorded.
- Items: each sentence tokenised once (fast tokenizer, truncated to `spec.max_length`); a
  word's label goes on its first sub-token, IGNORE_INDEX on the rest and on special tokens. A
  word with no sub-token in the item (cut off by truncation, or dropped by the tokenizer's
  normaliser) is predicted "O" when scoring: it stays in the gold, counting against recall.
- Training: token cross-entropy over the labelled positions. Distillation: T^2 * KL(teacher ||
  student) averaged over every position with attention_mask 1 (special tokens and later
  sub-tokens included: the teacher's distribution there is signal too); padding is never read,
  so a cached teacher's zero-padding does not matter.
- Metric: entity-level micro F1 (primary), precision, recall with conlleval's reading of the
  tags (`entity_metric`); word accuracy; P/R/F1/support per entity type.
- Parity: argmax agreement at the first sub-tokens (the scored positions), unit "tokens"; the
  max |difference| over every logit of the real tokens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from app.catalog import BUILTIN_DATASETS, TASK_FACTS, TaskName
from app.schemas.job_spec import DatasetSpec
from app.services.conll_format import (
    TagFormat,
    TagFormatError,
    TaggedSentence,
    TagScheme,
    check_scheme,
    detect_scheme,
    read_tagged,
    tag_names,
    to_iob2,
)
from app.services.job_estimate import config_labels
from app.storage import ArtifactStore
from worker.pipelines.data import DEV_FRACTION, parse_uuid, random_split
from worker.pipelines.errors import DatasetInvalid, DatasetUnavailable, ModelInvalid
from worker.pipelines.tasks.base import (
    IGNORE_INDEX,
    Agreement,
    DatasetLookup,
    ItemOutputs,
    Metrics,
    Output,
    TaskData,
    blend,
    has_head,
    labelled_head,
    pad_ids,
    pad_inputs,
)
from worker.pipelines.tasks.classification import config_num_labels, soft_kl
from worker.pipelines.tasks.entity_metric import (
    LOGITS,
    entity_scores,
    first_pieces,
    token_agreement,
    word_tags,
)

TASK_NAME: TaskName = "token_classification"
CONLL2003 = "conll2003"
FORMATS: tuple[TagFormat, ...] = ("conll", "jsonl")
SCHEMES: dict[str, TagScheme] = {"IOB1": "IOB1", "IOB2": "IOB2"}


@dataclass(frozen=True)
class Sentence:
    words: tuple[str, ...]
    labels: tuple[int, ...]  # ids of the IOB2 tags in `label_names`


@dataclass(frozen=True)
class TokenItem:
    input_ids: list[int]
    token_type_ids: list[int] | None  # None where the tokenizer makes none
    labels: list[int]  # the word's label at its first sub-token, else IGNORE_INDEX
    word_ids: list[int | None]  # the word of each sub-token (None: a special token)


# --- reading -------------------------------------------------------------------------------


def _read(path: Path, fmt: TagFormat, tag_column: str | None, where: str) -> list[TaggedSentence]:
    if not path.is_file():
        raise DatasetUnavailable(f"{where}: data file {path} is missing")
    try:
        return read_tagged(path, fmt, tag_column=tag_column)
    except TagFormatError as e:
        raise DatasetInvalid(f"{where}: {e}") from e


def _scheme(
    given: Sequence[str | None], files: Mapping[str, Sequence[TaggedSentence]]
) -> TagScheme:
    """The first scheme `given` (None and "auto" skipped), else detected over every file;
    each file checked against it."""
    everything = [s for sentences in files.values() for s in sentences]
    named = [SCHEMES[g] for g in given if g in SCHEMES]
    scheme = named[0] if named else detect_scheme(everything)
    for where, sentences in files.items():
        try:
            check_scheme(sentences, scheme)
        except TagFormatError as e:
            raise DatasetInvalid(f"{where}: {e}") from e
    return scheme


def _sentences(
    tagged: Sequence[TaggedSentence], scheme: TagScheme, ids: Mapping[str, int]
) -> list[Sentence]:
    return [Sentence(s.tokens, tuple(ids[t] for t in to_iob2(s.tags, scheme))) for s in tagged]


def _task_data(
    name: str, train: list[TaggedSentence], dev: list[TaggedSentence], scheme: TagScheme,
    where: str, recorded: Sequence[str] | None = None,
) -> TaskData[Sentence]:  # fmt: skip
    names = tag_names([*train, *dev])
    if len(names) < 2:
        raise DatasetInvalid(f"{where}: no entity tags (every tag is O)")
    if recorded is not None and names != list(recorded):
        raise DatasetInvalid(
            f"{where}: the file's tags read as {names}, but the upload recorded "
            f"{list(recorded)}; upload the data set again and submit the job with the new one"
        )
    ids = {n: i for i, n in enumerate(names)}
    return TaskData(name, _sentences(train, scheme, ids), _sentences(dev, scheme, ids), names)


def load_builtin(spec: DatasetSpec, data_dir: Path) -> TaskData[Sentence]:
    where = f"built-in data set {CONLL2003!r}"
    files = {
        f"{where}, {name}": data_dir / CONLL2003 / name
        for name in BUILTIN_DATASETS[CONLL2003].files
    }
    read = {w: _read(path, "conll", spec.tag_column, w) for w, path in files.items()}
    scheme = _scheme([spec.tag_scheme], read)
    train, dev = read.values()
    return _task_data(CONLL2003, train, dev, scheme, where)


def load_uploaded(
    ds_id: uuid.UUID, spec: DatasetSpec, lookup: DatasetLookup, store: ArtifactStore, seed: int
) -> TaskData[Sentence]:
    where = f"data set {ds_id}"
    rec = lookup.get_uploaded_dataset(ds_id)
    if rec is None:
        raise DatasetUnavailable(f"uploaded data set {ds_id} not found")
    if not store.exists(rec.storage_key):
        raise DatasetUnavailable(f"the file of data set {ds_id} is missing from the store")
    if rec.task != TASK_NAME or rec.format not in FORMATS:
        raise DatasetInvalid(f"{where}: uploaded for {rec.task} ({rec.format}), not for "
                             f"{TASK_NAME} (conll or jsonl)")  # fmt: skip
    fmt: TagFormat = "conll" if rec.format == "conll" else "jsonl"
    tag_column = spec.tag_column or rec.label_column or None
    sentences = _read(store.local_path(rec.storage_key), fmt, tag_column, where)
    if len(sentences) < 2:
        raise DatasetInvalid(f"{where}: needs two sentences or more (train and dev)")
    scheme = _scheme([spec.tag_scheme, rec.tag_scheme], {where: sentences})
    train, dev = random_split(sentences, DEV_FRACTION, seed)
    return _task_data(str(ds_id), train, dev, scheme, where, rec.labels)


# --- items ---------------------------------------------------------------------------------


def _item(enc: Any, i: int, sentence: Sentence) -> TokenItem:
    ids, word_ids = list(enc["input_ids"][i]), list(enc.word_ids(i))
    labels = [IGNORE_INDEX] * len(ids)
    for word, pos in first_pieces(word_ids).items():
        labels[pos] = sentence.labels[word]
    types = list(enc["token_type_ids"][i]) if "token_type_ids" in enc else None
    return TokenItem(ids, types, labels, word_ids)


# --- the task ------------------------------------------------------------------------------


class TokenClassification:
    facts = TASK_FACTS[TASK_NAME]
    outputs: tuple[Output, ...] = (Output(LOGITS, per_token=True),)
    auto_class = "AutoModelForTokenClassification"
    min_agreement = 0.995

    def load(
        self, spec: DatasetSpec, *, data_dir: Path, lookup: DatasetLookup,
        store: ArtifactStore, seed: int,
    ) -> TaskData[Sentence]:  # fmt: skip
        if spec.name == CONLL2003:
            return load_builtin(spec, data_dir)
        if (ds_id := parse_uuid(spec.name)) is not None:
            return load_uploaded(ds_id, spec, lookup, store, seed)
        raise DatasetUnavailable(
            f"{spec.name!r} is no token classification data set ({CONLL2003} or an uploaded one)"
        )

    def model_config(self, data: TaskData[Any]) -> dict[str, Any]:
        return labelled_head(data.label_names)

    def head_fits(self, config: Mapping[str, Any], data: TaskData[Any]) -> bool:
        """A trained token head whose labels are our tags in our order (a head that orders
        them otherwise would be silently wrong; a generic `LABEL_i` one cannot be checked, so
        it does not fit either); by count only where the config has no id2label."""
        if not has_head(config, self.facts):
            return False
        names = config_labels(config)
        if names is None:
            return config_num_labels(config) == data.num_labels
        return names == data.label_names

    def items(
        self, tokenizer: Any, examples: Sequence[Any], spec: DatasetSpec, *, train: bool
    ) -> list[TokenItem]:
        if not getattr(tokenizer, "is_fast", False):
            raise ModelInvalid("token classification needs a fast tokenizer (its word ids "
                               "align the tags to sub-tokens)")  # fmt: skip
        if not examples:
            return []
        spaced = byte_level_words(tokenizer)
        words = [
            [w if i == 0 or not spaced else " " + w for i, w in enumerate(ex.words)]
            for ex in examples
        ]
        enc = tokenizer(
            words, is_split_into_words=True, truncation=True, max_length=spec.max_length
        )
        return [_item(enc, i, ex) for i, ex in enumerate(examples)]

    def collate(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Padded on the right to the longest item (`items` truncated them already)."""
        width = max(len(it.input_ids) for it in items)
        if width > max_length:
            raise ValueError(f"an item of {width} tokens in a batch of at most {max_length}")
        batch = pad_inputs(tokenizer, items, device)
        batch["labels"] = pad_ids([it.labels for it in items], width, IGNORE_INDEX, device)
        return batch

    def loss(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Mean cross-entropy over the labelled positions of the batch (0 where it has none,
        not NaN)."""
        logits, labels = outputs[LOGITS], batch["labels"]
        total = F.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        return total / (labels != IGNORE_INDEX).sum().clamp(min=1)

    def distill_loss(
        self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor],
        batch: Mapping[str, torch.Tensor], *, hardness: float, temperature: float,
    ) -> torch.Tensor:  # fmt: skip
        real = batch["attention_mask"].bool()
        kl = soft_kl(student[LOGITS][real], teacher[LOGITS][real], temperature)
        return blend(hardness, kl, lambda: self.loss(student, batch))

    def score(
        self, examples: Sequence[Any], items: Sequence[Any], outputs: Sequence[ItemOutputs],
        spec: DatasetSpec, label_names: Sequence[str],
    ) -> Metrics:  # fmt: skip
        gold = [[label_names[i] for i in ex.labels] for ex in examples]
        pred = [
            word_tags(it.word_ids, out[LOGITS], len(ex.words), label_names)
            for ex, it, out in zip(examples, items, outputs, strict=True)
        ]
        types = sorted({n[2:] for n in label_names if n != "O"})
        ev = entity_scores(gold, pred, types)
        values = {"entity_f1": ev.f1, "entity_precision": ev.precision,
                  "entity_recall": ev.recall, "token_accuracy": ev.accuracy}  # fmt: skip
        return Metrics("entity_f1", values, len(examples), {"per_type": ev.per_type})

    def agree(
        self, items: Sequence[Any], outputs: Sequence[ItemOutputs],
        reference: Sequence[ItemOutputs], reference_name: str, spec: DatasetSpec,
    ) -> Agreement:  # fmt: skip
        return token_agreement(items, outputs, reference, reference_name)


TASK = TokenClassification()


def byte_level_words(tokenizer: Any) -> bool:
    """Whether pre-split words need the space running text gives them (all but the first):
    a byte-level BPE (RoBERTa, ModernBERT) without `add_prefix_space` reads a word's leading
    space as part of it, so without one "happy" is cut as it never is in running text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if pre is None:
        return False
    state = json.loads(pre.__getstate__())
    parts = state.get("pretokenizers") or [state]
    return any(p.get("type") == "ByteLevel" and not p.get("add_prefix_space") for p in parts)
