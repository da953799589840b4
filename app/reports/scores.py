"""Eval blocks (a model's scores on the dev split, with what was measured of it) and their parts.

Every task's eval block names its primary metric (`primary_metric: {name, value}`) and holds
each scalar metric by name (`accuracy`, `f1`, `spearman`...), with the task's details beside
them (`per_class`, `per_type`). Blocks written before there were several tasks (classification
only) have no `primary_metric`: their primary metric is `accuracy` (:meth:`Scored.primary`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from app.catalog import METRIC_NAMES
from app.reports.base import Section

DEFAULT_METRIC = "accuracy"  # the primary metric of a block without `primary_metric`

# The scalar metrics the tasks write, by name (a block holds those of its task).


class PrimaryMetric(Section):
    name: str  # one of METRIC_NAMES
    value: float | None = None  # None only where an old block had no accuracy


class Scored(Section):
    """Anything that names its primary metric (an eval block, a pruning step)."""

    primary_metric: PrimaryMetric | None = None
    accuracy: float | None = None  # sequence classification (and every block before tasks)

    def primary(self) -> PrimaryMetric:
        """The block's primary metric; a block without one (written before there were several
        tasks) has accuracy."""
        if self.primary_metric is not None:
            return self.primary_metric
        return PrimaryMetric(name=DEFAULT_METRIC, value=self.accuracy)


class ClassScores(Section):
    """One class (classification) or entity type (token classification)."""

    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    support: int | float | None = None  # a count (a float in classification blocks)


class Scores(Scored):
    """A task's metrics on the dev split (`worker.pipelines.tasks.base.Metrics.as_dict`)."""

    macro_f1: float | None = None
    entity_f1: float | None = None
    entity_precision: float | None = None
    entity_recall: float | None = None
    token_accuracy: float | None = None
    f1: float | None = None
    exact_match: float | None = None
    spearman: float | None = None
    pearson: float | None = None
    mse: float | None = None
    per_class: dict[str, ClassScores] | None = None  # sequence classification
    per_type: dict[str, ClassScores] | None = None  # token classification
    eval_examples: int | None = None  # what was scored: examples, sentences, questions
    n: int | None = None  # older reports' name for eval_examples

    def scalars(self) -> dict[str, float]:
        """Every scalar metric the block holds, by name."""
        values = {name: getattr(self, name) for name in METRIC_NAMES}
        return {name: float(v) for name, v in values.items() if v is not None}

    def metric(self, name: str) -> float | None:
        """Metric `name`: the scalar of that name, else the primary metric's value."""
        value: float | None = getattr(self, name, None) if name in METRIC_NAMES else None
        if value is not None:
            return value
        shown = self.primary()
        return shown.value if shown.name == name else None


class FileSize(Section):
    raw_mb: float  # MiB
    gzip_mb: float  # gzip level 6, MiB


class Latency(Section):
    """Median CPU time of one forward pass at the job's max length."""

    batch_1_ms: float
    batch_32_ms: float
    throughput_b32_per_s: float | None = None  # ONNX files
    runs_b1: int | None = None  # ONNX files: timed runs
    runs_b32: int | None = None


class Speedup(Section):
    batch_1: float
    batch_32: float


class Parity(Section):
    """How closely one model's outputs follow a reference's on the dev split."""

    reference: str  # pytorch_fp32, pytorch_int8, pytorch_qat
    agreement: float  # the fraction of `unit`s predicted the same
    # the largest output difference (older reports: `max_abs_logit_diff`)
    max_abs_diff: float | None = Field(
        default=None, validation_alias=AliasChoices("max_abs_diff", "max_abs_logit_diff")
    )
    n: int
    unit: Literal["examples", "questions", "tokens"] = "examples"
    pearson: float | None = None  # regression
    close_fraction: float | None = None  # regression


class Sparsity(Section):
    """Over the family's prunable matrices, measured on the saved model."""

    overall: float
    per_layer: dict[str, float] = Field(default_factory=dict)  # per Linear module
    per_encoder_layer: dict[str, float] = Field(default_factory=dict)  # per transformer block
    zeros: int | None = None
    total: int | None = None


class DenseBlock(Scores):
    """The dense (fine-tuned) model in PyTorch fp32."""

    parameters: int
    encoder_sparsity: float | None = None
    file_size: FileSize
    latency_cpu_ms: Latency


class CompressedBlock(Scores):
    """The compressed model in PyTorch fp32, measured from the saved files."""

    parameters: int
    num_hidden_layers: int | None = None
    kept_layers: list[int] | None = None  # the original layers kept (None: all of them)
    sparsity: Sparsity
    file_size: FileSize
    latency_cpu_ms: Latency


class Int8Block(Scores):
    """The compressed model quantized to int8 in PyTorch."""

    file_size: FileSize
    latency_cpu_ms: Latency


class OnnxBlock(Scores):
    """One exported ONNX file, scored and timed by ONNX Runtime."""

    file: str | None = None  # its name (not given for the dense baseline)
    file_size: FileSize
    parity: Parity | None = None
    parity_vs_qat: Parity | None = None  # int8 of a QAT job: against the fake-quant model
    eval_batch_size: int | None = None  # int8: the batch size its metrics were taken at
    batch_1: Scores | None = None  # int8: every dev item run alone
    latency_cpu_ms: Latency
    speedup_vs_dense: Speedup | None = None
    speedup_vs_fp32: Speedup | None = None  # int8


class AppliedStep(Scored):
    """One pruning step, with the primary dev metric right after it where it was measured
    (older reports: `accuracy`)."""

    step: int  # training step
    sparsity: float  # its target
