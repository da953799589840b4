"""The job spec: what a user asks Scalpel to do. Shared by the API (validation) and the worker."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BeforeValidator,
    Field,
    UrlConstraints,
    field_validator,
    model_validator,
)

from app import recipes
from app.catalog import BUILTIN_DATASETS, BUILTIN_MODELS, DEFAULT_TASK, TaskName
from app.schemas.common import SpecModel
from app.schemas.pruning_spec import (
    MAX_SPARSITY,
    GradualSchedule,
    OBertSpec,
    OneShotSchedule,
    PruningSpec,
    Schedule,
    Sparsity,
    StructuredSpec,
)

__all__ = [
    "BUILTIN_DATASETS",
    "BUILTIN_MODELS",
    "MAX_SPARSITY",
    "GradualSchedule",
    "JobSpec",
    "OBertSpec",
    "OneShotSchedule",
    "PruningSpec",
    "Schedule",
    "Sparsity",
    "SpecModel",
    "StructuredSpec",
]
# job.webhook_url and webhook_delivery.url are String(2048).
MAX_URL_LENGTH = 2048


def _stored_length(url: AnyHttpUrl) -> AnyHttpUrl:
    # The column holds the normalised form, which can be longer than what was sent
    # (percent-encoding, punycode).
    if len(str(url)) > MAX_URL_LENGTH:
        raise ValueError(f"URL should have at most {MAX_URL_LENGTH} characters once normalised")
    return url


WebhookUrl = Annotated[
    AnyHttpUrl, UrlConstraints(max_length=MAX_URL_LENGTH), AfterValidator(_stored_length)
]


def _dataset_by_name(value: Any) -> Any:
    """A data set given by its name alone: "sst2" is {"name": "sst2"}."""
    return {"name": value} if isinstance(value, str) else value


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
        default=None, min_length=1, max_length=2,
        description="The text columns: one, or two for pairs (default: the data set's own).",
        examples=[["sentence"], ["premise", "hypothesis"]],
    )  # fmt: skip
    label_column: str | None = Field(
        default=None,
        description="The label column (default: the data set's own).",
        examples=["label"],
    )
    max_train_examples: int | None = Field(
        default=None, ge=8, le=10_000_000,
        description="Train on at most this many training examples, a subsample seeded by "
        "training.seed (default: all of them).",
        examples=[4000],
    )  # fmt: skip
    max_eval_examples: int | None = Field(
        default=None, ge=8, le=1_000_000,
        description="Score on at most this many dev examples, a seeded subsample (default: "
        "all of them).",
        examples=[500],
    )  # fmt: skip
    max_length: int = Field(
        default=128, ge=8, le=512, description="Tokens per row (question answering: 384).",
        examples=[64],
    )  # fmt: skip
    # question_answering
    doc_stride: int | None = Field(
        default=None, ge=1, le=512,
        description="question_answering: tokens of overlap between a context's windows (128, "
        "or a third of a shorter window); at most half of max_length.",
        examples=[64],
    )  # fmt: skip
    max_answer_length: int | None = Field(
        default=None, ge=1, le=512,
        description="question_answering: the longest answer span predicted, in tokens (30).",
        examples=[30],
    )  # fmt: skip
    # token_classification
    tag_column: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="token_classification: the JSONL field (`tags`) or CoNLL column (the "
        "last) of the tags.",
        examples=["tags"],
    )  # fmt: skip
    tag_scheme: Literal["auto", "IOB1", "IOB2"] | None = Field(
        default=None,
        description="token_classification: the tags' scheme (auto: detected).",
        examples=["IOB2"],
    )
    # regression
    score_column: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="regression: the column of float targets (`score`, else `label`).",
        examples=["score"],
    )  # fmt: skip
    score_range: list[float] | None = Field(
        default=None, min_length=2, max_length=2,
        description="regression: [low, high]; every score must lie in it.",
        examples=[[0.0, 5.0]],
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


class DistillationSpec(SpecModel):
    """Knowledge distillation from the dense fine-tuned teacher: (1-h)*task + h*T^2*KL."""

    enabled: bool = Field(
        default=False,
        description="Distil recovery (and QAT) training from the dense model.",
        examples=[True],
    )
    hardness: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="h: the distillation loss's share (1: the teacher's outputs alone).",
        examples=[1.0],
    )  # fmt: skip
    temperature: float = Field(
        default=2.0, gt=0.0, le=100.0,
        description="T: the softmax temperature of teacher and student outputs.",
        examples=[2.0],
    )  # fmt: skip
    hidden_weight: float = Field(
        default=0.0, ge=0.0, le=100.0,
        description="Token-level distillation (ZipLM): this weight times the relative squared "
        "error of the student's hidden state after each encoder layer to the teacher's (a "
        "dropped-layer student's layer against the one it was kept from), over real tokens, "
        "added to the loss; 0: outputs only. The teacher then runs on every batch (hidden "
        "states are not cached).",
        examples=[1.0],
    )  # fmt: skip


class QuantizationSpec(SpecModel):
    method: Literal["none", "dynamic_int8", "qat_int8"] = Field(
        default="none",
        description="The PyTorch int8 model (model-int8.tar.gz): dynamic_int8 quantizes the "
        "compressed model's Linear weights after training (activations at run time); qat_int8 "
        "fine-tunes with fake quantization first. The int8 ONNX file is exported either way.",
        examples=["qat_int8"],
    )
    qat_steps: int | None = Field(
        default=None,
        ge=0,
        le=10_000_000,
        description="qat_int8: quantization-aware fine-tuning steps (default: recovery length).",
        examples=[500],
    )


class LayersSpec(SpecModel):
    keep: int = Field(
        ge=1, le=48, description="Keep this many evenly spaced encoder layers.", examples=[3]
    )


class TrainingSpec(SpecModel):
    finetune_dense: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="auto: fine-tune a dense model first when the model has no trained head.",
        examples=["always"],
    )
    epochs: float = Field(
        default=1.0, gt=0, le=100, description="Dense fine-tuning epochs.", examples=[3.0]
    )
    max_steps: int | None = Field(
        default=None, ge=1, le=10_000_000,
        description="Dense fine-tuning optimizer steps, in place of `epochs`.",
        examples=[1000],
    )  # fmt: skip
    recovery_epochs: float = Field(
        default=1.0, ge=0, le=100,
        description="Epochs of training after pruning or dropping layers (0: none).",
        examples=[3.0],
    )  # fmt: skip
    recovery_max_steps: int | None = Field(
        default=None, ge=0, le=10_000_000,
        description="Recovery optimizer steps, in place of `recovery_epochs`.",
        examples=[1000],
    )  # fmt: skip
    batch_size: int = Field(
        default=16, ge=1, le=1024, description="Training examples per optimizer step.",
        examples=[32],
    )  # fmt: skip
    eval_batch_size: int = Field(
        default=64, ge=1, le=4096, description="Dev examples per forward pass when scoring.",
        examples=[128],
    )  # fmt: skip
    learning_rate: float = Field(
        default=5e-5, gt=0, le=1.0,
        description="AdamW's peak learning rate, after a linear warmup; linear decay to 0.",
        examples=[1.5e-4],
    )  # fmt: skip
    weight_decay: float = Field(
        default=0.0, ge=0, le=1.0, description="AdamW's decoupled weight decay.",
        examples=[0.01],
    )  # fmt: skip
    warmup_ratio: float = Field(
        default=0.1, ge=0, le=0.5,
        description="The fraction of each training run's steps spent warming up the rate.",
        examples=[0.1],
    )  # fmt: skip
    max_grad_norm: float = Field(
        default=1.0, gt=0, le=1000, description="Gradients are clipped to this L2 norm.",
        examples=[1.0],
    )  # fmt: skip
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1,
        description="Seeds the subsamples, shuffling, dropout and initialisation.",
        examples=[42],
    )  # fmt: skip


class JobSpec(SpecModel):
    task: TaskName = Field(
        default=DEFAULT_TASK,
        description="sequence_classification (single sentences and pairs), regression (a "
        "float target), token_classification (named entities) or question_answering "
        "(extractive, SQuAD v1.1 style).",
        examples=["sequence_classification"],
    )
    model: str = Field(
        description="A built-in model (minilm-l6) or the id of an uploaded model.",
        examples=["minilm-l6"],
        min_length=1,
        max_length=64,
    )
    dataset: Annotated[
        DatasetSpec, BeforeValidator(_dataset_by_name, json_schema_input_type=str | DatasetSpec)
    ] = Field(
        description="The data set's options, or its name alone (read as {name}).",
        examples=["sst2", {"name": "sst2", "max_train_examples": 4000, "max_length": 64}],
    )
    pruning: PruningSpec = Field(
        default_factory=PruningSpec,
        description="How weights are removed (default: magnitude pruning to 0.5, one-shot).",
        examples=[{"method": "obert", "sparsity": 0.8,
                   "schedule": {"kind": "gradual", "epochs": 2.0}}],
    )  # fmt: skip
    distillation: DistillationSpec = Field(
        default_factory=DistillationSpec,
        description="Distillation from the dense fine-tuned model (default: off).",
        examples=[{"enabled": True, "hardness": 1.0, "temperature": 2.0}],
    )
    quantization: QuantizationSpec = Field(
        default_factory=QuantizationSpec,
        description="int8 quantization of the compressed model (default: none).",
        examples=[{"method": "dynamic_int8"}],
    )
    layers: LayersSpec | None = Field(
        default=None,
        description="Drop encoder layers before pruning (absent or null: keep them all).",
        examples=[{"keep": 3}],
    )
    training: TrainingSpec = Field(
        default_factory=TrainingSpec,
        description="Dense fine-tuning, recovery and evaluation options.",
        examples=[{"epochs": 3.0, "recovery_epochs": 3.0, "batch_size": 32}],
    )
    webhook_url: WebhookUrl | None = Field(
        default=None,
        description="Where the job.succeeded, job.failed or job.canceled event is POSTed, "
        "signed per Standard Webhooks (http or https, at most 2048 characters).",
        examples=["https://hooks.example.com/scalpel"],
    )
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
        if not isinstance(data, dict):
            return data
        if "dataset" in data:  # before the merge: the task's dataset defaults apply to it
            data = {**data, "dataset": _dataset_by_name(data["dataset"])}
        return recipes.resolve(data)

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, ref: str | None) -> str | None:
        return recipes.check_ref(ref)
