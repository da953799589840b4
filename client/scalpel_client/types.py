"""The API's responses as typed dicts: what `GET /v1/jobs/{id}` and friends answer, key for key.

They are plain dicts at run time (the JSON as it came, `json.dumps` works on them); the types
say which keys are there. Timestamps stay ISO 8601 strings, ids UUID strings. A response
missing one of these keys is refused with ScalpelError (see base.typed); keys the API adds
later pass through.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]


class JobError(TypedDict):
    code: str
    message: str


class JobLinks(TypedDict):
    self: str
    artifacts: str
    events: str


class JobWebhook(TypedDict):
    url: str  # the submission's webhook_url
    events: list[str]  # the event types sent: job.succeeded, job.running, ...
    # Only in the submission's answer: set when the tenant has no signing secret yet.
    notice: str | None


class Job(TypedDict):
    id: str
    name: str | None  # the name given at submission
    labels: dict[str, str]  # the labels given at submission
    status: JobStatus
    stage: str | None
    progress: float
    cancel_requested: bool
    spec: dict[str, Any]
    metrics: dict[str, Any]
    error: JobError | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    links: JobLinks
    webhook: JobWebhook | None  # None: the job has no webhook_url
    # When the job's training should be done (the steps left at the measured rate; not the
    # evaluation, measurement and export after it), and the seconds until then; None while
    # the job is not running, before its first measurement, and once no training is left.
    eta_seconds: float | None
    eta_at: str | None


class JobEvent(TypedDict):
    id: int  # the event's number within its job: 1, 2, 3, ...
    kind: str  # status, stage, progress, metrics, telemetry (see Job events in the API docs)
    status: str | None
    stage: str | None
    progress: float | None
    message: str | None
    data: dict[str, Any] | None
    created_at: str


class EventPage(TypedDict):
    items: list[JobEvent]
    next_after: int | None  # pass as `after` for the next page; None: no more for now


class Artifact(TypedDict):
    id: str
    job_id: str
    kind: str
    filename: str
    media_type: str
    size_bytes: int
    sha256: str
    created_at: str
    download_url: str
    note: str | None  # what to know before deploying it (the PyTorch int8 needs Scalpel's code)
    recommended: bool  # the ONNX files: run in ONNX Runtime alone
    expired_at: str | None  # set once retention removed the file (the download is then a 410)


class UploadedModel(TypedDict):
    id: str
    name: str
    filename: str
    archive_format: str
    size_bytes: int
    sha256: str
    architecture: str
    num_labels: int | None
    num_parameters: int
    config: dict[str, Any]
    created_at: str


class UploadedDataset(TypedDict):
    id: str
    task: str
    name: str
    filename: str
    format: str
    size_bytes: int
    sha256: str
    columns: list[str]
    text_columns: list[str]
    label_column: str
    labels: list[str]
    num_rows: int
    options: dict[str, Any]
    created_at: str


class MemoryTerm(TypedDict):
    what: str  # what the memory holds
    bytes: int  # its estimated size
    field: str  # the spec field that shrinks it


class MemoryEstimate(TypedDict):
    peak_bytes: int  # the peak phase's terms, times overhead_factor
    phase: str  # the phase of the job with the largest peak
    terms: list[MemoryTerm]
    overhead_factor: float
    budget_bytes: int  # the worker's memory budget
    budget_setting: str  # the setting the budget comes from


class TimeStep(TypedDict):
    name: str  # a training stage, a pruning step, the fixed part or export
    seconds: float
    flops: float | None
    source: str  # where its seconds come from


class TimeEstimate(TypedDict):
    seconds: float  # the job's estimated run time
    steps: list[TimeStep]  # what the seconds are made of
    flops_per_s: float
    flops_per_s_setting: str
    limit_s: int  # the per-job time limit
    limit_setting: str
    field: str  # the spec field that shortens the job most


class JobDryRun(TypedDict):
    """What `submit_job(..., dry_run=True)` answers: the submission checked, nothing stored."""

    dry_run: Literal[True]
    spec: dict[str, Any]  # the spec as the job would store it (recipe merged, defaults filled)
    name: str | None
    labels: dict[str, str]
    webhook: JobWebhook | None
    memory_estimate: MemoryEstimate | None  # None: the model's config is unknown
    time_estimate: TimeEstimate | None


class Recipe(TypedDict):
    name: str
    version: int
    ref: str  # name@version, as a job spec's `recipe` may pin it
    description: str
    spec: dict[str, Any]  # the partial job spec the recipe applies
