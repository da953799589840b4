"""A job's `metrics` (JobOut.metrics): what the worker writes into the job row as the job runs
(the load, evaluate_dense and evaluate stages) and when it succeeds (the summary of report.json,
`worker.pipelines.report.summary`). report.json holds the rest.

Every key is optional: a job holds the keys of the stages it reached (a canceled one at least
`stage_seconds`), and a job of an older version may lack newer keys or hold keys no longer
written. Metrics are returned as stored: only the keys the job has (no nulls added), unknown
keys kept as they are. A stored value that does not fit its key's type (the worker never writes
one) is left out of the response and logged, rather than failing the read.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.catalog import METRIC_NAMES, TaskName

log = logging.getLogger(__name__)

# The other models' scalar metrics: `dense_<metric>` (every scalar of the dense model's task),
# `int8_<metric>`, `onnx_<metric>` and `onnx_int8_<metric>` (each one's primary metric).
MODEL_PREFIXES = ("dense", "int8", "onnx", "onnx_int8")
PREFIXED_METRIC = f"^({'|'.join(MODEL_PREFIXES)})_({'|'.join(METRIC_NAMES)})$"
_PREFIXED = re.compile(PREFIXED_METRIC)
PREFIXED_DESCRIPTION = (
    "Another model's value of a metric named as in primary_metric: `dense_<metric>` (the dense "
    "model: every scalar metric of its task), `int8_<metric>` (PyTorch int8), `onnx_<metric>` "
    "(fp32 ONNX) and `onnx_int8_<metric>` (int8 ONNX): their primary metric."
)
PRIMARY = "The task's primary metric of the compressed model (PyTorch fp32) on the dev split."
SCALAR = "The compressed model's {what} on the dev split ({task}); a fraction unless noted."


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


class NamedMetric(BaseModel):
    """A metric and its value (`app.reports.PrimaryMetric`, as report.json holds it)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        description=f"The metric: one of {', '.join(METRIC_NAMES)}.", examples=["accuracy"]
    )
    value: float | None = Field(
        default=None, description="Its value (null: not measured).", examples=[0.8532]
    )


def _without_serializer(schema: Any) -> Any:
    """The model's core schema without its serializer (under the validators wrapping it)."""
    if schema["type"] == "model":
        return {k: v for k, v in schema.items() if k != "serialization"}
    return {**schema, "schema": _without_serializer(schema["schema"])}


def _scalar(what: str, task: str, example: float) -> Any:
    return Field(default=None, description=SCALAR.format(what=what, task=task), examples=[example])


class JobMetrics(BaseModel):
    """The job's headline numbers: its task, each model's primary metric, the compressed
    model's scalar metrics, sparsity, size and latency, and the time each stage took. Keys
    matching `dense_<metric>`, `int8_<metric>`, `onnx_<metric>` and `onnx_int8_<metric>` hold
    the other models' values; other keys may be present (older jobs)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "patternProperties": {
                PREFIXED_METRIC: {
                    "type": ["number", "null"],
                    "description": PREFIXED_DESCRIPTION,
                    "examples": [0.8612],
                }
            },
            "examples": [
                {
                    "task": "sequence_classification",
                    "primary_metric": {"name": "accuracy", "value": 0.8532},
                    "accuracy": 0.8532,
                    "dense_accuracy": 0.8612,
                    "sparsity": 0.8,
                    "latency_b1_ms": 3.6,
                    "stage_seconds": {"load": 0.4, "recover": 812.5},
                }
            ],
        },
    )

    # the load stage
    task: TaskName | None = Field(
        default=None, description="The job's task (spec.task).", examples=["question_answering"]
    )
    train_examples: int | None = Field(
        default=None,
        description="Training examples used (after dataset.max_train_examples).",
        examples=[4000],
    )
    train_items: int | None = Field(
        default=None,
        description="Training rows those became (question answering: windows of a context).",
        examples=[4112],
    )
    dev_examples: int | None = Field(
        default=None,
        description="Dev examples scored (after dataset.max_eval_examples).",
        examples=[872],
    )
    num_labels: int | None = Field(
        default=None,
        description="The data set's classes or tags (0 where the task has none: regression, "
        "question answering).",
        examples=[2],
    )
    model_has_trained_head: bool | None = Field(
        default=None,
        description="Whether the model came with a trained head for the task (if not, "
        "training.finetune_dense auto fine-tunes it first).",
        examples=[False],
    )
    device: str | None = Field(
        default=None, description="Where the worker trained: cpu or cuda[:n].", examples=["cpu"]
    )
    # each model's primary metric
    primary_metric: NamedMetric | None = Field(default=None, description=PRIMARY)
    dense_primary_metric: NamedMetric | None = Field(
        default=None, description="The dense fine-tuned model's primary metric (PyTorch fp32)."
    )
    int8_primary_metric: NamedMetric | None = Field(
        default=None,
        description="The PyTorch int8 model's primary metric (quantization dynamic_int8 or "
        "qat_int8).",
    )
    onnx_primary_metric: NamedMetric | None = Field(
        default=None, description="The fp32 ONNX file's primary metric (ONNX Runtime)."
    )
    onnx_int8_primary_metric: NamedMetric | None = Field(
        default=None, description="The int8 ONNX file's primary metric (ONNX Runtime)."
    )
    # the compressed model's scalar metrics (METRIC_NAMES), those of its task
    accuracy: float | None = _scalar("accuracy", "sequence_classification", 0.8532)
    macro_f1: float | None = _scalar("F1 averaged over classes", "sequence_classification", 0.85)
    entity_f1: float | None = _scalar("entity-level F1", "token_classification", 0.88)
    entity_precision: float | None = _scalar("entity-level precision", "token_classification", 0.87)
    entity_recall: float | None = _scalar("entity-level recall", "token_classification", 0.89)
    token_accuracy: float | None = _scalar("token accuracy", "token_classification", 0.97)
    f1: float | None = _scalar("SQuAD token-overlap F1", "question_answering", 0.841)
    exact_match: float | None = _scalar("SQuAD exact match", "question_answering", 0.753)
    spearman: float | None = _scalar("Spearman correlation", "regression", 0.87)
    pearson: float | None = _scalar("Pearson correlation", "regression", 0.88)
    mse: float | None = _scalar("mean squared error, in squared target units", "regression", 0.5)
    # the summary: the compressed model measured from its saved files
    sparsity: float | None = Field(
        default=None,
        description="The fraction of the prunable weights that are zero, measured on the "
        "saved model.",
        examples=[0.8],
    )
    parameters: int | None = Field(
        default=None, description="The compressed model's parameters.", examples=[22713602]
    )
    model_size_mb: float | None = Field(
        default=None, description="Its weights file, in MiB.", examples=[86.7]
    )
    model_gzip_mb: float | None = Field(
        default=None, description="Its weights file gzipped (level 6), in MiB.", examples=[31.2]
    )
    latency_b1_ms: float | None = Field(
        default=None,
        description="Its median CPU latency of one forward pass at batch 1 and the job's "
        "max_length (PyTorch fp32), in ms.",
        examples=[3.6],
    )
    latency_b32_ms: float | None = Field(
        default=None, description="The same at batch 32, in ms.", examples=[20.1]
    )
    dense_latency_b1_ms: float | None = Field(
        default=None, description="The dense model's latency_b1_ms, in ms.", examples=[4.6]
    )
    int8_size_mb: float | None = Field(
        default=None, description="The PyTorch int8 model's weights, in MiB.", examples=[23.4]
    )
    int8_latency_b1_ms: float | None = Field(
        default=None, description="The PyTorch int8 model's latency at batch 1, in ms.",
        examples=[2.5],
    )  # fmt: skip
    onnx_agreement: float | None = Field(
        default=None,
        description="The fraction of dev items the fp32 ONNX file predicts as the PyTorch "
        "model does.",
        examples=[1.0],
    )
    onnx_int8_latency_b1_ms: float | None = Field(
        default=None,
        description="The int8 ONNX file's median latency at batch 1 (ONNX Runtime), in ms.",
        examples=[0.9],
    )
    onnx_int8_speedup_b1: float | None = Field(
        default=None,
        description="The dense fp32 ONNX file's batch-1 latency over the int8 ONNX file's.",
        examples=[4.1],
    )
    stage_seconds: dict[str, float] | None = Field(
        default=None,
        description="Seconds each stage took, by stage name, in run order.",
        examples=[{"load": 0.4, "finetune_dense": 95.2, "recover": 812.5, "package": 3.1}],
    )
    total_seconds: float | None = Field(
        default=None, description="The pipeline's wall time, in seconds.", examples=[1021.7]
    )

    @model_validator(mode="after")
    def _prefixed_are_numbers(self) -> JobMetrics:
        for key, value in (self.model_extra or {}).items():
            if _PREFIXED.match(key) and not _number(value):
                raise ValueError(f"{key} must be a number or null")
        return self

    @model_serializer(mode="wrap")
    def _given_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        given = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in data.items() if k in given}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The serializer above only leaves keys out: the response schema is the model's own
        # (with it, pydantic would document the serializer's return type, a free-form object).
        return handler(_without_serializer(core_schema))

    @classmethod
    def of(cls, stored: dict[str, Any] | None, *, job: object = None) -> JobMetrics:
        """The stored metrics; a key whose value does not fit its type is left out (logged)."""
        data = dict(stored or {})
        misfits = {k for k, v in data.items() if _PREFIXED.match(k) and not _number(v)}
        try:
            out = cls.model_validate({k: v for k, v in data.items() if k not in misfits})
        except ValidationError as exc:  # a declared key's error is located at that key
            misfits |= {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            out = cls.model_validate({k: v for k, v in data.items() if k not in misfits})
        if misfits:
            log.warning("job %s: metrics %s left out: not of their type", job, sorted(misfits))
        return out
