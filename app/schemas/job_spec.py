"""The job spec: what a user asks Scalpel to do. Shared by the API (validation) and the worker."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    ConfigDict,
    Field,
    UrlConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app import recipes
from app.catalog import BUILTIN_DATASETS, BUILTIN_MODELS, DEFAULT_TASK, TaskName
from app.schemas.common import StrictModel

__all__ = ["BUILTIN_DATASETS", "BUILTIN_MODELS", "JobSpec"]
# job.webhook_url and webhook_delivery.url are String(2048).
MAX_URL_LENGTH = 2048


class SpecModel(StrictModel):
    """Strict JSON types: an integer field takes only a JSON integer (not "2", true or 2.0), a
    number field an integer or a float (not "0.5" or true), a boolean only true or false."""

    model_config = ConfigDict(strict=True)


def _stored_length(url: AnyHttpUrl) -> AnyHttpUrl:
    # The column holds the normalised form, which can be longer than what was sent
    # (percent-encoding, punycode).
    if len(str(url)) > MAX_URL_LENGTH:
        raise ValueError(f"URL should have at most {MAX_URL_LENGTH} characters once normalised")
    return url


WebhookUrl = Annotated[
    AnyHttpUrl, UrlConstraints(max_length=MAX_URL_LENGTH), AfterValidator(_stored_length)
]


# Dataset options that belong to one task each: app.services.jobs refuses one in another
# task's spec with a 422 invalid_option naming the field (a model validator could not name it).
TASK_DATASET_OPTIONS: dict[str, TaskName] = {
    "doc_stride": "question_answering",
    "max_answer_length": "question_answering",
    "tag_column": "token_classification",
    "tag_scheme": "token_classification",
    "score_column": "regression",
    "score_range": "regression",
}


class DatasetSpec(SpecModel):
    name: str = Field(
        description="A built-in data set (sst2, agnews, rte, tweets, stsb, conll2003, squad) "
        "or the id of an uploaded one.",
        examples=["tweets"],
        min_length=1,
        max_length=64,
    )
    text_columns: list[str] | None = Field(
        default=None, min_length=1, max_length=2, description="One column, or two for pairs."
    )
    label_column: str | None = None
    max_train_examples: int | None = Field(default=None, ge=8, le=10_000_000)
    max_eval_examples: int | None = Field(default=None, ge=8, le=1_000_000)
    max_length: int = Field(
        default=128, ge=8, le=512, description="Tokens per row (question answering: 384)."
    )
    # question_answering
    doc_stride: int | None = Field(
        default=None, ge=1, le=512,
        description="question_answering: tokens of overlap between a context's windows (128, "
        "or a third of a shorter window); at most half of max_length.",
    )  # fmt: skip
    max_answer_length: int | None = Field(
        default=None, ge=1, le=512,
        description="question_answering: the longest answer span predicted, in tokens (30).",
    )  # fmt: skip
    # token_classification
    tag_column: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="token_classification: the JSONL field (`tags`) or CoNLL column (the "
        "last) of the tags.",
    )  # fmt: skip
    tag_scheme: Literal["auto", "IOB1", "IOB2"] | None = Field(
        default=None, description="token_classification: the tags' scheme (auto: detected)."
    )
    # regression
    score_column: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="regression: the column of float targets (`score`, else `label`).",
    )  # fmt: skip
    score_range: list[float] | None = Field(
        default=None, min_length=2, max_length=2,
        description="regression: [low, high]; every score must lie in it.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _range(self) -> DatasetSpec:
        if self.score_range is not None and not self.score_range[0] < self.score_range[1]:
            raise ValueError("score_range must be [low, high] with low < high")
        stride = self.doc_stride
        if stride is not None and (2 * stride > self.max_length or stride > self.max_length - 5):
            # a window holds the question, three special tokens and more context than the
            # overlap (the tokenizer needs one context token past it): half the window leaves
            # room for a question of a few dozen tokens
            raise ValueError("doc_stride must be at most half of max_length (and max_length - 5)")
        return self


class OneShotSchedule(SpecModel):
    kind: Literal["oneshot"] = "oneshot"


class GradualSchedule(SpecModel):
    """Cubic schedule from init_sparsity to the target over `epochs` or `steps` of training."""

    kind: Literal["gradual"]
    epochs: float | None = Field(default=None, gt=0, le=100)
    steps: int | None = Field(default=None, ge=1, le=10_000_000)
    pruning_steps: int = Field(default=4, ge=1, le=1000)
    init_sparsity: float = Field(default=0.0, ge=0.0, le=0.99)
    lr_rewind: bool = Field(
        default=False,
        description="Learning-rate rewinding: back to the full rate at each pruning step, "
        "decaying linearly to the next one (and to the end of recovery after the last).",
    )

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> GradualSchedule:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("give exactly one of 'epochs' or 'steps'")
        return self


Schedule = Annotated[OneShotSchedule | GradualSchedule, Field(discriminator="kind")]


class OBertSpec(SpecModel):
    """oBERT knobs; None means the worker's CPU-friendly default."""

    num_grads: int | None = Field(default=None, ge=1, le=65_536)
    block_size: int | None = Field(default=None, ge=1, le=512)
    damp: float | None = Field(default=None, gt=0, le=1.0)
    num_recomputations: int = Field(default=1, ge=1, le=64)
    grad_batch_size: int | None = Field(default=None, ge=1, le=512)


class StructuredSpec(SpecModel):
    """Structured second-order pruning (ZipLM): attention heads, FFN neurons and whole modules
    removed from the matrices, as many per layer as a measured latency target allows."""

    target_speedup: float = Field(
        default=2.0, gt=1.0, le=20.0,
        description="Dense latency / compressed latency, both measured in `runtime` (fp32) at "
        "latency_batch_size x dataset.max_length and the worker's threads. A target the "
        "model cannot reach (its fastest allocation is slower) fails the job.",
    )  # fmt: skip
    runtime: Literal["onnxruntime-cpu"] = Field(
        default="onnxruntime-cpu", description="Where the latency table is measured."
    )
    steps: int = Field(
        default=3, ge=1, le=20,
        description="Gradual pruning: step k aims at target_speedup ** (k / steps), with "
        "distillation and recovery between steps; 1 is one-shot.",
    )  # fmt: skip
    calibration_batches: int = Field(
        default=16, ge=1, le=1024,
        description="Training batches whose layer inputs calibrate each step.",
    )  # fmt: skip
    damp: float = Field(
        default=0.01, gt=0, le=1.0,
        description="Dampening of X^T X, relative to the mean of its diagonal.",
    )  # fmt: skip
    latency_batch_size: Literal[1, 32] = Field(
        default=1,
        description="The batch size the latency table is measured at: 1 or 32, the two the "
        "export measures the result at (so the measured speedup is reported beside the "
        "predicted one).",
    )


_OWN_STEPS = (
    "method 'structured' has its own schedule and options: pruning.structured.steps (1 is "
    "one-shot), .calibration_batches and .damp"
)


class PruningSpec(SpecModel):
    method: Literal["magnitude", "obert", "structured", "none"] = Field(
        default="magnitude",
        description="magnitude or obert: unstructured or block sparsity (pruning.sparsity); "
        "structured: heads, FFN neurons and whole modules removed to reach "
        "pruning.structured.target_speedup (sparsity, structure, scope and schedule do not apply).",
    )
    sparsity: float = Field(default=0.5, ge=0.0, le=0.99)
    structure: Literal["unstructured", "block4"] = "unstructured"
    scope: Literal["global", "layerwise"] = "global"
    schedule: Schedule = Field(default_factory=OneShotSchedule)
    obert: OBertSpec | None = None
    structured: StructuredSpec | None = Field(
        default=None,
        description="method structured's options (absent or null: the defaults).",
        examples=[{"target_speedup": 2.0, "steps": 3}],
    )

    # Field validators run in declaration order, after `method`: they can name their field.
    @field_validator("schedule")
    @classmethod
    def _schedule_fits_method(
        cls, schedule: OneShotSchedule | GradualSchedule, info: ValidationInfo
    ) -> OneShotSchedule | GradualSchedule:
        if isinstance(schedule, GradualSchedule) and info.data.get("method") == "structured":
            raise ValueError(f"a gradual schedule does not apply; {_OWN_STEPS}")
        return schedule

    @field_validator("obert")
    @classmethod
    def _obert_fits_method(cls, obert: OBertSpec | None, info: ValidationInfo) -> OBertSpec | None:
        method = info.data.get("method")
        if obert is not None and method == "structured":
            raise ValueError(f"'obert' options do not apply; {_OWN_STEPS}")
        if obert is not None and method not in (None, "obert"):
            raise ValueError("'obert' options are only valid with method 'obert'")
        return obert

    @field_validator("structured")
    @classmethod
    def _structured_fits_method(
        cls, structured: StructuredSpec | None, info: ValidationInfo
    ) -> StructuredSpec | None:
        method = info.data.get("method")
        if structured is not None and method not in (None, "structured"):
            raise ValueError("'structured' options are only valid with method 'structured'")
        return structured

    @model_validator(mode="after")
    def _consistent(self) -> PruningSpec:
        if (
            isinstance(self.schedule, GradualSchedule)
            and self.schedule.init_sparsity > self.sparsity
        ):
            raise ValueError("schedule.init_sparsity must not exceed sparsity")
        return self


class DistillationSpec(SpecModel):
    """Knowledge distillation from the dense fine-tuned teacher: (1-h)*task + h*T^2*KL."""

    enabled: bool = False
    hardness: float = Field(default=1.0, ge=0.0, le=1.0)
    temperature: float = Field(default=2.0, gt=0.0, le=100.0)


class QuantizationSpec(SpecModel):
    method: Literal["none", "dynamic_int8", "qat_int8"] = "none"
    qat_steps: int | None = Field(
        default=None,
        ge=0,
        le=10_000_000,
        description="qat_int8: quantization-aware fine-tuning steps (default: recovery length).",
    )


class LayersSpec(SpecModel):
    keep: int = Field(ge=1, le=48, description="Keep this many evenly spaced encoder layers.")


class TrainingSpec(SpecModel):
    finetune_dense: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="auto: fine-tune a dense model first when the model has no trained head.",
    )
    epochs: float = Field(default=1.0, gt=0, le=100, description="Dense fine-tuning epochs.")
    max_steps: int | None = Field(default=None, ge=1, le=10_000_000)
    recovery_epochs: float = Field(default=1.0, ge=0, le=100)
    recovery_max_steps: int | None = Field(default=None, ge=0, le=10_000_000)
    batch_size: int = Field(default=16, ge=1, le=1024)
    eval_batch_size: int = Field(default=64, ge=1, le=4096)
    learning_rate: float = Field(default=5e-5, gt=0, le=1.0)
    weight_decay: float = Field(default=0.0, ge=0, le=1.0)
    warmup_ratio: float = Field(default=0.1, ge=0, le=0.5)
    max_grad_norm: float = Field(default=1.0, gt=0, le=1000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class JobSpec(SpecModel):
    task: TaskName = Field(
        default=DEFAULT_TASK,
        description="sequence_classification (single sentences and pairs), regression (a "
        "float target), token_classification (named entities) or question_answering "
        "(extractive, SQuAD v1.1 style).",
    )
    model: str = Field(
        description="A built-in model (minilm-l6) or the id of an uploaded model.",
        examples=["minilm-l6"],
        min_length=1,
        max_length=64,
    )
    dataset: DatasetSpec
    pruning: PruningSpec = Field(default_factory=PruningSpec)
    distillation: DistillationSpec = Field(default_factory=DistillationSpec)
    quantization: QuantizationSpec = Field(default_factory=QuantizationSpec)
    layers: LayersSpec | None = None
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    webhook_url: WebhookUrl | None = None
    recipe: str | None = Field(
        default=None,
        max_length=64,
        description="A built-in recipe (GET /v1/recipes), `name` (latest) or `name@version`; "
        "the spec's other fields are deep-merged over it. Stored pinned to name@version.",
        examples=["obert-80", "obert-80@1"],
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, data: Any) -> Any:
        return recipes.resolve(data) if isinstance(data, dict) else data

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, ref: str | None) -> str | None:
        return recipes.check_ref(ref)
