"""The estimate's view of each task: the sizes of the new built-in data sets (TSV rows, CoNLL
sentences, SQuAD questions as windows), the head outputs a data set needs, and whether a
checkpoint's trained head spares the dense fine-tuning."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from app.schemas.job_spec import JobSpec
from app.services import job_data_sizes as ds
from app.services import job_estimate as je
from app.settings import Settings

CONLL = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
-DOCSTART- -X- -X- O


BRUSSELS NNP I-NP I-LOC
"""  # 3 sentences: a DOCSTART line ends one like a blank line does; the last has no blank


def squad(questions_per_paragraph: list[int]) -> str:
    paragraphs = [{"context": "c", "qas": [{"id": f"{p}-{q}", "question": "?", "answers": []}
                                           for q in range(n)]}
                  for p, n in enumerate(questions_per_paragraph)]  # fmt: skip
    return json.dumps({"data": [{"title": "a", "paragraphs": paragraphs[:2]},
                                {"title": "b", "paragraphs": paragraphs[2:]}]})  # fmt: skip


def write(root: Path, name: str, files: dict[str, str]) -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    for f, text in files.items():
        (root / name / f).write_text(text)
    return root


def test_builtin_sizes_count_rows_sentences_and_question_windows(tmp_path: Path) -> None:
    write(
        tmp_path,
        "stsb",
        {
            "train.tsv": "sentence1\tsentence2\tscore\n" + "a\tb\t1.5\n" * 12,
            "dev.tsv": "sentence1\tsentence2\tscore\n" + "a\tb\t1\n" * 3,
        },
    )
    write(tmp_path, "conll2003", {"train.txt": CONLL, "dev.txt": CONLL * 2})
    write(tmp_path, "squad", {"train.json": squad([2, 3, 0, 5]), "dev.json": squad([1, 0])})
    assert ds.builtin_sizes("stsb", tmp_path) == ds.DataSizes(12, 3, 1, 62)
    assert ds.builtin_sizes("conll2003", tmp_path) == ds.DataSizes(3, 6, 9, 48)
    # 10 and 1 questions, 1.2 windows each, rounded up
    assert ds.builtin_sizes("squad", tmp_path) == ds.DataSizes(12, 2, None, 310)


def counts(name: str, data_dir: Path) -> tuple[int, int]:
    sizes = ds.builtin_sizes(name, data_dir)
    return sizes.train, sizes.dev


def test_a_changed_file_is_counted_again_and_a_broken_one_counts_one(tmp_path: Path) -> None:
    write(tmp_path, "squad", {"train.json": squad([4]), "dev.json": "{not json"})
    assert counts("squad", tmp_path) == (5, 2)  # 4 x 1.2 -> 5; broken: 1 x 1.2 -> 2
    write(tmp_path, "squad", {"train.json": squad([4, 6, 10])})
    assert counts("squad", tmp_path) == (24, 2)


def test_the_shared_data_sets_count_as_their_readme_says() -> None:
    data_dir = Settings().data_dir
    if not (data_dir / "squad" / "train.json").is_file():
        pytest.skip(f"the shared data sets are not under {data_dir}")
    assert counts("stsb", data_dir) == (5_749, 1_500)
    assert counts("conll2003", data_dir) == (14_041, 3_250)
    windows = ds.QA_WINDOWS_PER_QUESTION
    assert counts("squad", data_dir) == (math.ceil(11_877 * windows), math.ceil(4_961 * windows))


def test_task_labels_and_uploaded_question_windows() -> None:
    assert ds.task_labels("sequence_classification", ["a", "b", "c"]) == 3
    assert ds.task_labels("token_classification", ["O", "B-X", "I-X"]) == 3
    assert ds.task_labels("sequence_classification", []) is None
    assert ds.task_labels("regression", []) == 1
    assert ds.task_labels("question_answering", []) is None
    assert ds.uploaded_sizes(100, 3) == ds.DataSizes(100, 10, 3, None)
    assert ds.uploaded_sizes(100, None, "question_answering") == ds.DataSizes(120, 12, None, None)


def spec(task: str, finetune: str = "auto") -> JobSpec:
    return JobSpec.model_validate({"task": task, "model": "minilm-l6", "dataset": {"name": "x"},
                                   "training": {"finetune_dense": finetune}})  # fmt: skip


def config(arch: str | None, **extra: Any) -> dict[str, Any]:
    return {"architectures": [arch] if arch else None, **extra}


@pytest.mark.parametrize(
    ("task", "cfg", "num_labels", "finetunes"),
    [("question_answering", config("BertForQuestionAnswering"), None, False),
     ("question_answering", config("BertModel"), None, True),
     ("question_answering", config("BertForSequenceClassification"), None, True),
     ("regression", config("BertForSequenceClassification", num_labels=1), 1, False),
     ("regression", config("BertForSequenceClassification"), 1, True),  # 2 outputs by default
     ("token_classification", config("BertForTokenClassification", num_labels=9), 9, False),
     ("token_classification", config("BertForSequenceClassification", num_labels=9), 9, True),
     ("sequence_classification", config("BertForSequenceClassification",
                                        id2label={"0": "a", "1": "b", "2": "c"}), 3, False),
     ("sequence_classification", config("BertForSequenceClassification"), None, True),
     ("sequence_classification", config(None), 2, True)],
)  # fmt: skip
def test_a_trained_head_of_the_task_and_size_spares_the_dense_finetune(
    task: str, cfg: dict[str, Any], num_labels: int | None, finetunes: bool
) -> None:
    assert je.finetunes(spec(task), cfg, num_labels) is finetunes
    assert je.finetunes(spec(task, "always"), cfg, num_labels) is True
    assert je.finetunes(spec(task, "never"), cfg, num_labels) is False


def test_head_labels_read_id2label_then_num_labels_then_two() -> None:
    assert je.head_labels({"id2label": {"0": "a"}, "num_labels": 5}) == 1
    assert je.head_labels({"num_labels": 5}) == 5
    assert je.head_labels({"id2label": {}}) == 2
