"""The report's `structured` section (pruning method structured): the job's options, the
latency table and model it allocated with, each step and the result
(`worker.pipelines.stages.structured`, `worker.pipelines.structured_plan.report_section`).

The section's models keep keys they do not declare (:class:`OpenSection`): the stage adds to
the section, and what it adds is reported as written.

Every key written since the first structured reports (7ef8c49) is optional: a report, or a job
resumed from a step checkpoint, of an earlier shape still loads. Those first reports had no
latency model measurements (`measured_*_ms`, `block_scale`); the next ones (cebb9e3) had
`measured_dense_ms` and `measured_student_ms` without `block_scale`; the closed-loop planning
keys (`plan_*`, `measured_over_plan`) came after them, and `precision` (fp32 before it) after
those.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.reports.base import OpenSection
from app.schemas.pruning_spec import LossNorm, TargetBand


class LatencyKeyJson(OpenSection):
    """What the latency table depends on (`worker.pipelines.latency_table.LatencyKey`)."""

    cpu: str
    int8_instructions: list[str] | None = None
    hidden: int
    heads: int
    ffn: int
    gated: bool
    activation: str
    batch: int
    seq_len: int
    threads: int
    precision: str
    runtime: str


class BlockTableJson(OpenSection):
    """Seconds per kept count of one block kind."""

    counts: list[int]
    raw: list[float]
    monotone: list[float]


class LatencyTableJson(OpenSection):
    version: int
    key: LatencyKeyJson
    attention: BlockTableJson
    ffn: BlockTableJson
    rest: float
    rounds: int
    iters: int


class LatencyModelJson(OpenSection):
    layers: int
    dense_ms: float
    fixed_ms: float
    fixed_part: str  # how the fixed part was found
    block_scale: float | None = None  # the blocks' measured over isolated cost; None: unscaled
    measured_dense_ms: float | None = None
    measured_student_ms: float | None = None
    measured_minimal_ms: float | None = None
    best_speedup: float | None = None


class Kept(OpenSection):
    """Heads and FFN neurons kept per layer, and the predicted latency."""

    kept_heads: list[int]
    kept_neurons: list[int]
    kept_head_indices: list[list[int]]
    predicted_latency_ms: float
    predicted_speedup: float


class PlanRoundJson(OpenSection):
    """One timed plan of a step (`worker.pipelines.structured_measure.PlanRound.as_dict`)."""

    round: int  # from 1
    internal_target_speedup: float  # what the allocation was asked for
    predicted_speedup: float  # the latency model's
    predicted_latency_ms: float
    measured_speedup: float  # its compacted graph timed against the dense one
    loss: float
    kept_heads: list[int]
    kept_neurons: list[int]
    chosen: bool  # the round the step kept


class StructuredStep(Kept):
    step: int
    target_speedup: float
    calibration_tokens: int
    calibration_batches: int
    loss: float
    sparsity: float
    train_step: int
    recovery_steps: int
    # the measured plan (`MeasuredPlan.as_row`); absent from the steps of earlier reports
    plan_measured_speedup: float | None = None  # the kept round's measured speedup
    plan_internal_target_speedup: float | None = None
    plan_round: int | None = None  # the kept round's number
    plan_met: bool | None = None  # measured at least the band's low end
    plan_stopped: str | None = None  # within_tolerance (in the band), repeated_plan, max_rounds
    plan_band: tuple[float, float] | None = None  # the accepted measured speedups (low, high)
    plan_rounds: list[PlanRoundJson] = Field(default_factory=list)


class StructuredFinal(Kept):
    heads: int
    heads_kept: int
    neurons: int
    neurons_kept: int
    removed_parameters: int
    total_parameters: int
    fraction_removed: float
    plan_measured_speedup: float | None = None  # the last step's plan, measured when planning


class PlanMeasurement(OpenSection):
    """How each step's plan was measured (`worker.pipelines.structured_measure`)."""

    max_rounds: int
    tolerance: float
    method: str


class SectionPlanRound(OpenSection):
    """One planning round of one step, as the section lists every step's
    (`worker.pipelines.structured_plan.report_section`)."""

    step: int
    round: int
    internal_target_speedup: float
    predicted_speedup: float
    measured_speedup: float
    chosen: bool


class StructuredSection(OpenSection):
    # the job's options (app.schemas.job_spec.StructuredSpec)
    target_speedup: float
    runtime: str
    steps: int
    calibration_batches: int
    damp: float
    latency_batch_size: int
    step_targets: list[float]
    latency_table: LatencyTableJson
    latency_model: LatencyModelJson
    per_step: list[StructuredStep]
    final: StructuredFinal
    plan_measurement: PlanMeasurement | None = None
    precision: Literal["fp32", "int8"] = "fp32"  # the options' (absent from earlier reports)
    normalize_loss_by: LossNorm = "output"  # likewise
    target_band: TargetBand = "around"  # likewise
    # the export's file at `precision` against the dense fp32 one at the table's batch, and
    # over the predicted
    measured_speedup: float | None = None
    measured_over_predicted: float | None = None
    # the last step's plan as measured when planning, and the export's measured over it
    plan_measured_speedup: float | None = None
    measured_over_plan: float | None = None
    plan_rounds: list[SectionPlanRound] = Field(default_factory=list)  # every step's rounds
