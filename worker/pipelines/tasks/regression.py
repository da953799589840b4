"""Regression: one float target per single sentence or sentence pair (STS-B similarity).

The head is a one-output `ForSequenceClassification` (`num_labels=1`, `problem_type`
"regression"); its `logits[:, 0]` is the prediction.

- Data: the built-in `stsb` from `<data_dir>/stsb/{train,dev}.tsv` (`sentence1`, `sentence2`,
  `score` in [0, 5]; UTF-8, no quoting: sentences are kept as written, leading spaces and
  mis-encoded characters included); an uploaded data set (the spec names a UUID) read with
  `app.services.tabular.read_table`, whose score column is the one the upload recorded as its
  label column. `spec.text_columns` and `spec.score_column` (else `spec.label_column`, which
  names the same thing for this task) override the columns. A `split` column chooses an
  upload's splits, otherwise a seeded random 90/10 split is made. Scores are read by
  `app.services.scores.parse_score`, the API's rule; with `spec.score_range` every score
  must lie in it.
- Training: MSE; distillation `(1 - h) * MSE(student, gold) + h * MSE(student, teacher)`:
  a regression output is no distribution, so there is nothing to soften and the temperature
  is unused.
- Metric: Pearson and Spearman correlation with the gold scores (primary: Spearman, the
  STS-B convention) and the MSE. A correlation that is undefined (fewer than two examples, or
  constant predictions or scores) is reported as 0.0, not NaN: a model that predicts one
  value for everything has no rank correlation with the gold scores.
- Parity (gated at 0.999): the lower of the Pearson correlation of the exported model's
  outputs with the reference's and the fraction of examples within 1e-4 + 1e-3 * |reference|
  of it (an export that scales or shifts its outputs correlates at 1.0 but is not close);
  where the outputs hardly vary (spread <= 1e-3) the correlation is float noise and
  closeness alone decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from app.catalog import BUILTIN_DATASETS, TASK_FACTS, TaskFacts
from app.schemas.job_spec import DatasetSpec
from app.services.scores import ScoreError, check_range, parse_score
from app.storage import ArtifactStore
from worker.pipelines.data import (
    DEV_FRACTION,
    DEV_SPLITS,
    SPLIT_COLUMN,
    check_columns,
    parse_uuid,
    random_split,
    read_tsv,
)
from worker.pipelines.errors import DatasetInvalid, DatasetUnavailable
from worker.pipelines.tasks.base import (
    Agreement,
    DatasetLookup,
    ItemOutputs,
    Metrics,
    Output,
    Task,
    TaskData,
    blend,
    has_head,
    uploaded_record,
)
from worker.pipelines.tasks.classification import config_num_labels

LOGITS = "logits"
STSB = "stsb"
STSB_TEXT_COLUMNS = ("sentence1", "sentence2")
STSB_SCORE_COLUMN = "score"
# Parity: an output is close to the reference's within CLOSE_ATOL + CLOSE_RTOL * |reference|;
# outputs that vary by no more than CORRELATION_MIN_SPREAD have no meaningful correlation
CLOSE_ATOL, CLOSE_RTOL = 1e-4, 1e-3
CORRELATION_MIN_SPREAD = 1e-3


class ScoredExample(NamedTuple):
    text: str
    text_pair: str | None
    score: float


# --- reading -------------------------------------------------------------------------------


def _score(raw: str | None, score_range: Sequence[float] | None, where: str) -> float:
    """One cell's score; `where` names the row or line (and column) for the message."""
    try:
        value = parse_score(raw or "")
        if score_range is not None:
            check_range(value, score_range[0], score_range[1])
    except ScoreError as e:
        raise DatasetInvalid(f"{where}: {e.message}") from e
    return value


def _examples(
    rows: Sequence[Mapping[str, str]],
    places: Sequence[str],
    text_columns: Sequence[str],
    score_column: str,
    score_range: Sequence[float] | None,
) -> list[ScoredExample]:
    """Examples of `rows`; `places[i]` names row i in a message ("stsb/dev.tsv: row 3")."""
    out: list[ScoredExample] = []
    for row, place in zip(rows, places, strict=True):
        score = _score(row.get(score_column), score_range, f"{place}, column {score_column!r}")
        text = row.get(text_columns[0]) or ""
        pair = (row.get(text_columns[1]) or "") if len(text_columns) > 1 else None
        out.append(ScoredExample(text, pair, score))
    return out


def _score_column(spec: DatasetSpec, default: str) -> str:
    return spec.score_column or spec.label_column or default


def load_stsb(spec: DatasetSpec, data_dir: Path) -> TaskData[ScoredExample]:
    text_columns = tuple(spec.text_columns or STSB_TEXT_COLUMNS)
    score_column = _score_column(spec, STSB_SCORE_COLUMN)
    folder = data_dir / STSB
    if not folder.is_dir():
        raise DatasetUnavailable(f"built-in data set {STSB!r} not found under {data_dir}")
    splits: list[list[ScoredExample]] = []
    for file in BUILTIN_DATASETS[STSB].files:  # train.tsv, dev.tsv
        header, rows = read_tsv(folder / file)
        where = f"{STSB}/{file}"
        check_columns(header, [*text_columns, score_column], where)
        places = [f"{where}: row {i + 1}" for i in range(len(rows))]
        splits.append(_examples(rows, places, text_columns, score_column, spec.score_range))
    train, dev = splits
    return TaskData(STSB, train, dev, [])


def load_uploaded(
    dataset_id: uuid.UUID, spec: DatasetSpec, lookup: DatasetLookup, store: ArtifactStore, seed: int
) -> TaskData[ScoredExample]:
    from app.services.tabular import TableError, read_table

    rec = uploaded_record(lookup, store, dataset_id, "regression")
    where = f"data set {dataset_id}"
    try:
        table = read_table(store.local_path(rec.storage_key), rec.format)  # type: ignore[arg-type]
    except TableError as e:
        raise DatasetInvalid(f"{where}: {e}") from e
    text_columns = tuple(spec.text_columns or rec.text_columns)
    score_column = _score_column(spec, rec.label_column)
    check_columns(table.columns, [*text_columns, score_column], where)
    places = [f"{where}: line {line}" for line in table.lines]
    examples = _examples(table.rows, places, text_columns, score_column, spec.score_range)
    if SPLIT_COLUMN in table.columns and SPLIT_COLUMN not in (*text_columns, score_column):
        is_dev = [(r.get(SPLIT_COLUMN) or "").strip().lower() in DEV_SPLITS for r in table.rows]
        train = [ex for ex, d in zip(examples, is_dev, strict=True) if not d]
        dev = [ex for ex, d in zip(examples, is_dev, strict=True) if d]
    else:
        train, dev = random_split(examples, DEV_FRACTION, seed)
    if not train or not dev:
        raise DatasetInvalid(f"{where}: the train and dev splits must both be non-empty")
    return TaskData(str(dataset_id), train, dev, [])


# --- metrics -------------------------------------------------------------------------------


def _first_outputs(outputs: Sequence[ItemOutputs]) -> np.ndarray:
    """The prediction of each item (its first logit), as float64."""
    return np.array([float(np.asarray(o[LOGITS]).reshape(-1)[0]) for o in outputs], np.float64)


def correlation(fn: Callable[[np.ndarray, np.ndarray], Any], x: np.ndarray, y: np.ndarray) -> float:
    """`fn` (scipy.stats.pearsonr / spearmanr) of x and y; 0.0 where it is undefined (fewer
    than two points, or either side constant)."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(fn(x, y).statistic)


def regression_metrics(predictions: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    if len(predictions) != len(gold):
        raise ValueError(f"{len(predictions)} predictions against {len(gold)} scores")
    return {
        "pearson": correlation(stats.pearsonr, predictions, gold),
        "spearman": correlation(stats.spearmanr, predictions, gold),
        "mse": float(np.mean((predictions - gold) ** 2)),
    }


def output_agreement(
    outputs: Sequence[ItemOutputs], reference: Sequence[ItemOutputs], name: str
) -> Agreement:
    """The lower of two: the Pearson correlation of every output value with the reference's,
    and the fraction of examples within |diff| <= CLOSE_ATOL + CLOSE_RTOL * |reference|.
    Correlation alone ignores scale and offset (an export that doubles its outputs correlates
    at 1.0), closeness alone misses nothing but says little of near-constant outputs; with
    outputs that hardly vary (spread <= CORRELATION_MIN_SPREAD) the correlation is float
    noise and closeness decides. Both are reported, with the max |difference|."""
    if len(outputs) != len(reference):
        raise ValueError(f"{len(outputs)} outputs against {len(reference)} references")
    for a, b in zip(outputs, reference, strict=True):
        if a[LOGITS].shape != b[LOGITS].shape:
            raise ValueError(f"logits of shape {a[LOGITS].shape} against {b[LOGITS].shape}")
    if not outputs:
        return Agreement(name, 1.0, 0.0, 0, "examples", {"pearson": 1.0, "close_fraction": 1.0})
    x = np.stack([np.asarray(o[LOGITS], np.float64).reshape(-1) for o in outputs])
    y = np.stack([np.asarray(o[LOGITS], np.float64).reshape(-1) for o in reference])
    gap = np.abs(x - y)
    close = float(np.all(gap <= CLOSE_ATOL + CLOSE_RTOL * np.abs(y), axis=1).mean())
    if x.size < 2 or min(np.ptp(x), np.ptp(y)) <= CORRELATION_MIN_SPREAD:
        pearson = close
    else:
        pearson = float(stats.pearsonr(x.reshape(-1), y.reshape(-1)).statistic)
    extra = {"pearson": pearson, "close_fraction": close}
    return Agreement(name, min(pearson, close), float(gap.max()), len(outputs), "examples", extra)


# --- the task ------------------------------------------------------------------------------


def _mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(prediction.float(), target.float())


class Regression:
    facts: TaskFacts = TASK_FACTS["regression"]
    outputs: tuple[Output, ...] = (Output(LOGITS, per_token=False),)
    auto_class: str = "AutoModelForSequenceClassification"
    # Pearson correlation of the exported model's outputs with PyTorch's (`agree`)
    min_agreement: float = 0.999

    def load(
        self, spec: DatasetSpec, *, data_dir: Path, lookup: DatasetLookup,
        store: ArtifactStore, seed: int,
    ) -> TaskData[ScoredExample]:  # fmt: skip
        name = spec.name
        if name == STSB:
            return load_stsb(spec, data_dir)
        if (ds_id := parse_uuid(name)) is not None:
            return load_uploaded(ds_id, spec, lookup, store, seed)
        if name in BUILTIN_DATASETS:
            raise DatasetUnavailable(
                f"data set {name!r} is a {BUILTIN_DATASETS[name].task} data set, not regression"
            )
        raise DatasetUnavailable(f"unknown data set {name!r}")

    def model_config(self, data: TaskData[Any]) -> dict[str, Any]:
        return {"num_labels": 1, "problem_type": "regression"}

    def head_fits(self, config: Mapping[str, Any], data: TaskData[Any]) -> bool:
        """A `...ForSequenceClassification` with one output; a `problem_type`, when the config
        names one, must be regression (a one-logit classifier is not a regression head)."""
        return (
            has_head(config, self.facts)
            and config_num_labels(config) == 1
            and config.get("problem_type") in (None, "regression")
        )

    def items(
        self, tokenizer: Any, examples: Sequence[Any], spec: DatasetSpec, *, train: bool
    ) -> list[Any]:
        return list(examples)  # tokenised batch by batch in `collate`

    def collate(
        self, tokenizer: Any, items: Sequence[Any], max_length: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """The tokenizer call of `worker.pipelines.batches.collate`; `labels` the float32
        scores."""
        has_pairs = any(ex.text_pair is not None for ex in items)
        enc = tokenizer(
            [ex.text for ex in items],
            [ex.text_pair or "" for ex in items] if has_pairs else None,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batch = {k: v.to(device) for k, v in enc.items()}
        batch["labels"] = torch.tensor(
            [ex.score for ex in items], dtype=torch.float32, device=device
        )
        return batch

    def loss(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        return _mse(outputs[LOGITS][:, 0], batch["labels"])

    def distill_loss(
        self, student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor],
        batch: Mapping[str, torch.Tensor], *, hardness: float, temperature: float,
    ) -> torch.Tensor:  # fmt: skip
        """(1 - hardness) * MSE(student, gold) + hardness * MSE(student, teacher);
        `temperature` is unused (no distribution to soften)."""
        soft = _mse(student[LOGITS][:, 0], teacher[LOGITS][:, 0].detach())
        return blend(hardness, soft, lambda: self.loss(student, batch))

    def score(
        self, examples: Sequence[Any], items: Sequence[Any], outputs: Sequence[ItemOutputs],
        spec: DatasetSpec, label_names: Sequence[str],
    ) -> Metrics:  # fmt: skip
        gold = np.array([ex.score for ex in examples], np.float64)
        values = regression_metrics(_first_outputs(outputs), gold)
        return Metrics(self.facts.primary_metric, values, len(examples))

    def agree(
        self, items: Sequence[Any], outputs: Sequence[ItemOutputs],
        reference: Sequence[ItemOutputs], reference_name: str, spec: DatasetSpec,
    ) -> Agreement:  # fmt: skip
        return output_agreement(outputs, reference, reference_name)


TASK: Task = Regression()
