"""Facts the API and the worker share, written once (torch-free: both import it).

Tasks, what a model head for each looks like, the built-in models and the built-in data sets
(with the task each serves and the files it reads under `DATA_DIR`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TaskName = Literal[
    "sequence_classification", "regression", "token_classification", "question_answering"
]
TASKS: tuple[TaskName, ...] = (
    "sequence_classification",
    "regression",
    "token_classification",
    "question_answering",
)
DEFAULT_TASK: TaskName = "sequence_classification"


@dataclass(frozen=True)
class TaskFacts:
    name: TaskName
    # A trained head for this task: config.json `architectures` ends with this
    head_suffix: str
    primary_metric: str
    # Classes (classification) or tags (token classification) name the model's outputs
    labelled: bool
    # Spec fields set when neither the recipe nor the user gives them (dotted paths)
    defaults: dict[str, Any] = field(default_factory=dict)


TASK_FACTS: dict[TaskName, TaskFacts] = {
    "sequence_classification": TaskFacts(
        "sequence_classification", "ForSequenceClassification", "accuracy", True
    ),
    "regression": TaskFacts("regression", "ForSequenceClassification", "spearman", False),
    "token_classification": TaskFacts(
        "token_classification", "ForTokenClassification", "entity_f1", True
    ),
    # oBERT paper (Kurtic et al. 2022), SQuAD v1.1: learning rate 8e-5, gradient batch 8,
    # windows of 384 tokens with a stride of 128.
    "question_answering": TaskFacts(
        "question_answering",
        "ForQuestionAnswering",
        "f1",
        False,
        defaults={"training.learning_rate": 8e-5, "dataset.max_length": 384},
    ),
}

BUILTIN_MODELS: tuple[str, ...] = ("minilm-l6",)


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    task: TaskName
    # Files under `<DATA_DIR>/<name>/` (train first); () for a corpus shipped in a package
    files: tuple[str, ...]
    # The tags of a token-classification set, in id order (the worker's order: "O", then
    # B-/I- by entity type), which a trained head's id2label must equal
    tags: tuple[str, ...] = ()


CONLL2003_TAGS = ("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER")


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset("sst2", "sequence_classification", ("train.tsv", "dev.tsv")),
        BuiltinDataset("agnews", "sequence_classification", ("train.tsv", "dev.tsv")),
        BuiltinDataset("rte", "sequence_classification", ("train.tsv", "dev.tsv")),
        BuiltinDataset("tweets", "sequence_classification", ()),
        BuiltinDataset("stsb", "regression", ("train.tsv", "dev.tsv")),
        BuiltinDataset(
            "conll2003", "token_classification", ("train.txt", "dev.txt"), CONLL2003_TAGS
        ),
        BuiltinDataset("squad", "question_answering", ("train.json", "dev.json")),
    )
}

# Every scalar metric a task reports, by the name the report, the job's metrics and the
# dashboard use (the primary metric's `name` is one of them).
METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "macro_f1",
    "entity_f1",
    "entity_precision",
    "entity_recall",
    "token_accuracy",
    "f1",
    "exact_match",
    "spearman",
    "pearson",
    "mse",
)
