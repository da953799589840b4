"""The job spec's `pruning` section: the method, its target (a sparsity, or a speedup for
method structured), its schedule and the method's own options (app.schemas.job_spec)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.schemas.common import SpecModel

MAX_SPARSITY = 0.99


def _percent_hint(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A sparsity over its bound that reads as a percentage (1 to 100) gets a hint: the same
    error type and field, and the fraction it probably means (80: 0.8?; 1 is ambiguous)."""
    try:
        return handler(value)
    except ValidationError as exc:
        number = type(value) in (int, float) and 1 <= value <= 100
        if not number or exc.errors()[0]["type"] != "less_than_equal":
            raise
        meant = value / 100
        guess = f"; {meant:g}?" if value > 1 and meant <= MAX_SPARSITY else ""
        raise PydanticCustomError(
            "less_than_equal",
            "Input should be less than or equal to {le}: a fraction in [0, {le}]{guess}",
            {"le": MAX_SPARSITY, "guess": guess},
        ) from exc


# pruning.sparsity and schedule.init_sparsity: a fraction, never a percentage.
Sparsity = Annotated[float, Field(ge=0.0, le=MAX_SPARSITY), WrapValidator(_percent_hint)]


class OneShotSchedule(SpecModel):
    kind: Literal["oneshot"] = Field(
        default="oneshot",
        description="Prune once, to pruning.sparsity, then recover.",
        examples=["oneshot"],
    )


class GradualSchedule(SpecModel):
    """Cubic schedule from init_sparsity to the target over `epochs` or `steps` of training."""

    kind: Literal["gradual"] = Field(
        description="Prune during recovery, in pruning_steps steps along a cubic curve from "
        "init_sparsity to pruning.sparsity.",
        examples=["gradual"],
    )
    epochs: float | None = Field(
        default=None, gt=0, le=100,
        description="The schedule's length in epochs of the training set (give this or "
        "`steps`); recovery lasts at least as long.",
        examples=[2.0],
    )  # fmt: skip
    steps: int | None = Field(
        default=None, ge=1, le=10_000_000,
        description="The schedule's length in optimizer steps (give this or `epochs`); "
        "recovery lasts at least as long.",
        examples=[1000],
    )  # fmt: skip
    pruning_steps: int = Field(
        default=4, ge=1, le=1000,
        description="Pruning steps, evenly spaced over the schedule; the last reaches "
        "pruning.sparsity, and training goes on to the end with the mask held.",
        examples=[4],
    )  # fmt: skip
    init_sparsity: Sparsity = Field(
        default=0.0,
        description="Pruned to at step 0 (0: no step 0); at most pruning.sparsity.",
        examples=[0.3],
    )
    lr_rewind: bool = Field(
        default=False,
        description="Learning-rate rewinding: back to the full rate at each pruning step, "
        "decaying linearly to the next one (and to the end of recovery after the last).",
        examples=[True],
    )

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> GradualSchedule:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("give exactly one of 'epochs' or 'steps'")
        return self


Schedule = Annotated[OneShotSchedule | GradualSchedule, Field(discriminator="kind")]


class OBertSpec(SpecModel):
    """oBERT knobs; None means the worker's CPU-friendly default."""

    num_grads: int | None = Field(
        default=None, ge=1, le=65_536,
        description="m: mini-batch gradients in the empirical Fisher (default 64; the paper's "
        "1024).",
        examples=[256],
    )  # fmt: skip
    block_size: int | None = Field(
        default=None, ge=1, le=512,
        description="B: consecutive weights per Fisher block (default 50; block4: 32, and it "
        "must be a multiple of 4).",
        examples=[32],
    )  # fmt: skip
    damp: float | None = Field(
        default=None, gt=0, le=1.0,
        description="lambda, the dampening added to the Fisher's diagonal (default 1e-7).",
        examples=[1e-7],
    )  # fmt: skip
    num_recomputations: int = Field(
        default=1, ge=1, le=64,
        description="Sub-steps per pruning step, with interpolated targets and the gradients "
        "and inverses recomputed between them.",
        examples=[2],
    )  # fmt: skip
    grad_batch_size: int | None = Field(
        default=None, ge=1, le=512,
        description="Training examples per mini-batch gradient (default 8).",
        examples=[16],
    )  # fmt: skip


LossNorm = Literal["output", "stream"]  # StructuredSpec.normalize_loss_by
TargetBand = Literal["around", "at_least"]  # StructuredSpec.target_band
PLAN_TOLERANCE = 0.05  # the width of a step's band of accepted measured speedups, a fraction


class StructuredSpec(SpecModel):
    """Structured second-order pruning (ZipLM): attention heads, FFN neurons and whole modules
    removed from the matrices, as many per layer as a measured latency target allows."""

    target_speedup: float = Field(
        default=2.0, gt=1.0, le=20.0,
        description="Dense latency / compressed latency, both measured in `runtime` (the dense "
        "fp32 file against the compressed file at `precision`) at "
        "latency_batch_size x dataset.max_length and the worker's threads. A target the "
        "model cannot reach (its fastest allocation is slower) fails the job.",
        examples=[2.0],
    )  # fmt: skip
    runtime: Literal["onnxruntime-cpu"] = Field(
        default="onnxruntime-cpu",
        description="Where the latency table is measured.",
        examples=["onnxruntime-cpu"],
    )
    precision: Literal["fp32", "int8"] = Field(
        default="fp32",
        description="The exported file the target is measured on, against the dense fp32 "
        "file either way: fp32 (model.onnx) or int8 (model-int8.onnx; each plan timed "
        "quantized as the export quantizes it). int8 aims the compound with quantization.",
        examples=["int8"],
    )
    steps: int = Field(
        default=3, ge=1, le=20,
        description="Gradual pruning: step k aims at target_speedup ** (k / steps), with "
        "distillation and recovery between steps; 1 is one-shot.",
        examples=[3],
    )  # fmt: skip
    calibration_batches: int = Field(
        default=16, ge=1, le=1024,
        description="Training batches whose layer inputs calibrate each step.",
        examples=[16],
    )  # fmt: skip
    damp: float = Field(
        default=0.01, gt=0, le=1.0,
        description="Dampening of X^T X, relative to the mean of its diagonal.",
        examples=[0.01],
    )  # fmt: skip
    normalize_loss_by: LossNorm = Field(
        default="stream",
        description="What each module's layer-wise loss is divided by so that the allocation "
        "compares layers and modules: `output`, the energy of the dense projection's outputs "
        "(a relative error of each module); `stream`, the energy of the hidden states "
        "entering its layer (the residual stream the module writes into, so a module whose "
        "output is small beside it costs little to remove).",
        examples=["stream"],
    )
    target_band: TargetBand = Field(
        default="at_least",
        description="Which timed plans meet a step's target speedup t (each plan is built as "
        f"a graph and timed): `at_least`, t to t * {1 + PLAN_TOLERANCE:g}, aimed at the middle "
        "(the model is at least as fast as asked); `around`, within t * "
        f"(1 +- {PLAN_TOLERANCE:g}), aimed at t (the structured recipes before version 4). "
        "Of the plans in the band the least loss is kept, else the slowest faster one, else "
        "the fastest.",
        examples=["at_least"],
    )
    latency_batch_size: Literal[1, 32] = Field(
        default=1,
        description="The batch size the latency table is measured at: 1 or 32, the two the "
        "export measures the result at (so the measured speedup is reported beside the "
        "predicted one).",
        examples=[1],
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
        examples=["obert"],
    )
    sparsity: Sparsity = Field(
        default=0.5,
        description="The fraction of the prunable weights that are zero at the end (a "
        "fraction, not a percentage); weights already zero count toward it.",
        examples=[0.8],
    )
    structure: Literal["unstructured", "block4"] = Field(
        default="unstructured",
        description="unstructured: single weights; block4: blocks of 4 consecutive weights "
        "along a matrix's input dimension, pruned together.",
        examples=["block4"],
    )
    scope: Literal["global", "layerwise"] = Field(
        default="global",
        description="global: the sparsity over all prunable matrices together (some end "
        "sparser than others); layerwise: the sparsity in each matrix.",
        examples=["layerwise"],
    )
    schedule: Schedule = Field(
        default_factory=OneShotSchedule,
        description="When pruning happens: once before recovery (oneshot) or in steps during "
        "it (gradual).",
        examples=[{"kind": "gradual", "epochs": 2.0, "pruning_steps": 4}],
    )
    obert: OBertSpec | None = Field(
        default=None,
        description="method obert's options (absent or null: the defaults).",
        examples=[{"num_grads": 256}],
    )
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
