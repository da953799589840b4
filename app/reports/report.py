"""The report of a compression job (report.json), as the worker writes it and every reader
(report.md, the plots, the dashboard, bench/) reads it.

Fields newer than the first reports have defaults, so a report written before them still
loads; `schema_version` says which shape a report was written in (0: before it had one).
"""

from __future__ import annotations

from pydantic import Field, JsonValue

from app.catalog import DEFAULT_TASK, TaskName
from app.reports.base import Section
from app.reports.onnx import OnnxSection
from app.reports.scores import AppliedStep, CompressedBlock, DenseBlock, Int8Block
from app.reports.structured import StructuredSection
from app.schemas.job_spec import JobSpec

SCHEMA_VERSION = 1


class ModelInfo(Section):
    source: str  # builtin:<name> or the uploaded model
    had_trained_head: bool | None = None
    finetuned_dense: bool | None = None


class DatasetInfo(Section):
    name: str
    label_names: list[str] | None = None  # classes or tags in id order; [] where none
    train_examples: int | None = None
    train_items: int | None = None  # what one training row is (a window, for QA)
    dev_examples: int | None = None
    dev_items: int | None = None


class CpuInfo(Section):
    """The host the latencies were taken on (`worker.pipelines.host.cpu_info`)."""

    model: str
    cores: int
    threads: int  # what the timed sessions used
    int8_instructions: list[str] | None = None  # None: not known


class Pruning(Section):
    method: str  # as spec.pruning names it: magnitude, obert, structured, none
    target_sparsity: float | None = None  # None for method structured
    structure: str | None = None
    scope: str | None = None
    schedule: str | None = None  # oneshot, gradual
    applied: list[AppliedStep] = Field(default_factory=list)


class TeacherCache(Section):
    """The teacher's outputs cached for distillation (`worker.pipelines.teacher.CacheStats`)."""

    enabled: bool
    max_bytes: int | None = None
    items: int = 0
    bytes: int = 0
    hit_batches: int = 0  # batches served from the cache alone
    teacher_batches: int = 0  # batches that ran the teacher
    full: bool | None = None  # not every item fitted


class ResumedFrom(Section):
    """The checkpoint a redelivered job resumed from."""

    stage: str
    completed: list[str]
    prune_step: int | None = None
    train_step: int | None = None


class Versions(Section):
    scalpel: str
    torch: str
    onnx: str | None = None
    onnxruntime: str | None = None
    transformers: str
    python: str


class ArtifactRef(Section):
    filename: str
    sha256: str


class Report(Section):
    schema_version: int = 0
    job_id: str | None = None
    task: TaskName = DEFAULT_TASK
    # the resolved spec exactly as the job ran it (JobSpec, dumped): kept as JSON so that a
    # report of an older spec still loads; `job_spec()` validates it
    spec: dict[str, JsonValue] = Field(default_factory=dict)
    model: ModelInfo | None = None
    dataset: DatasetInfo | None = None
    max_length: int | None = None
    device: str | None = None
    cpu: CpuInfo | None = None
    dense: DenseBlock
    compressed: CompressedBlock
    int8: Int8Block | None = None
    pruning: Pruning | None = None
    onnx: OnnxSection | None = None
    structured: StructuredSection | None = None
    teacher_cache: TeacherCache | None = None
    training_steps: dict[str, int] = Field(default_factory=dict)  # by stage, in run order
    resumed_from: ResumedFrom | None = None
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    total_seconds: float | None = None
    versions: Versions | None = None
    artifacts: dict[str, ArtifactRef] = Field(default_factory=dict)  # by artifact kind

    def job_spec(self) -> JobSpec:
        """The spec validated (raises pydantic's ValidationError for a spec this version of
        the service no longer accepts)."""
        return JobSpec.model_validate(self.spec)

    def spec_at(self, *path: str) -> JsonValue:
        """The spec's value at `path` (None where it has none), for any spec version."""
        node: JsonValue = self.spec
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node
