"""POST /v1/jobs: the job spec, and the caller's own name, labels and webhook events for
the job.

The name, labels and webhook events are the job's, not the spec's: they are stored in their
own columns (job.name, job.labels, job.webhook_events) and never reach the worker. Labels
follow Kubernetes label keys: lowercase letters, digits, `-`, `_` and `.`, starting and
ending with a letter or digit, at most 63 characters; values are printable strings of at
most 255 characters. Also the answer of a dry run (POST /v1/jobs?dry_run=true)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator

from app.schemas.job_spec import JobSpec
from app.schemas.webhook_events import TERMINAL_EVENT_TYPES, WebhookEventType
from app.schemas.webhooks import JobWebhook

MAX_NAME_LENGTH = 255  # job.name is String(255)
MAX_LABELS = 32
MAX_LABEL_KEY_LENGTH = 63
MAX_LABEL_VALUE_LENGTH = 255
LABEL_KEY = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?")
# Fields of a submission that are the job's own, not its spec's.
JOB_FIELDS = frozenset({"name", "labels", "webhook_events"})


def check_name(name: str) -> str:
    if not name.strip():
        raise ValueError("the name is blank")
    if not name.isprintable():
        raise ValueError("the name has a character that is not printable (a control character)")
    return name


def check_label_key(key: str) -> str | None:
    """Why `key` is not a label key, or None."""
    if LABEL_KEY.fullmatch(key) is None:
        return (
            f"label key {key[:80]!r} is not a label key: 1 to {MAX_LABEL_KEY_LENGTH} lowercase "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return None


def check_label_value(key: str, value: str) -> str | None:
    """Why `value` cannot be label `key`'s value, or None."""
    if len(value) > MAX_LABEL_VALUE_LENGTH:
        return f"label {key!r}: the value is over {MAX_LABEL_VALUE_LENGTH} characters"
    if not value.isprintable():
        return f"label {key!r}: the value has a character that is not printable"
    return None


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels; at most {MAX_LABELS}")
    for key, value in labels.items():
        fault = check_label_key(key) or check_label_value(key, value)
        if fault is not None:
            raise ValueError(fault)
    return labels


JobName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME_LENGTH, description="The job's name (printable)."),
    AfterValidator(check_name),
]
Labels = Annotated[
    dict[str, str],
    Field(
        description=f"Up to {MAX_LABELS} labels: keys like Kubernetes label keys (lowercase "
        f"letters, digits, `-_.`, at most {MAX_LABEL_KEY_LENGTH}), printable string values "
        f"of at most {MAX_LABEL_VALUE_LENGTH} characters. GET /v1/jobs?label=key=value "
        "filters on them.",
        examples=[{"team": "search", "experiment": "obert-80"}],
    ),
    AfterValidator(check_labels),
]


def check_events(events: list[str]) -> list[str]:
    if len(set(events)) != len(events):
        raise ValueError("an event type is listed twice")
    return events


def _terminal_events() -> list[WebhookEventType]:
    return list(TERMINAL_EVENT_TYPES)


WebhookEvents = Annotated[
    list[WebhookEventType],
    Field(
        min_length=1,
        description="The event types sent to webhook_url: the terminal ones by default "
        "(job.succeeded, job.failed, job.canceled); add job.running (each time a worker starts "
        "the job) and job.pruning_step (after each pruning step: its sparsity, speedup and dev "
        "metric). Only the types listed are sent. Needs a webhook_url.",
        examples=[["job.succeeded", "job.failed", "job.canceled", "job.running"]],
    ),
    AfterValidator(check_events),
]


class JobSubmission(JobSpec):
    """A job spec, and the job's own name, labels and webhook events (stored beside the spec,
    not in it)."""

    name: JobName | None = Field(
        default=None,
        description=f"The job's name: printable, at most {MAX_NAME_LENGTH} characters, not "
        "necessarily unique (absent or null: none).",
        examples=["sst2-obert-80"],
    )
    labels: Labels = Field(default_factory=dict)
    webhook_events: WebhookEvents = Field(default_factory=_terminal_events)

    @field_validator("webhook_events")
    @classmethod
    def _events_need_a_url(cls, events: list[str], info: ValidationInfo) -> list[str]:
        """Given (a default is not validated), the events need a webhook_url (a field
        before this one: an invalid url is its own error)."""
        if "webhook_url" not in info.data:
            return events
        if info.data["webhook_url"] is None:
            raise ValueError("webhook_events needs a webhook_url to send them to")
        return events

    def spec_json(self) -> dict[str, Any]:
        """The spec as stored and as the worker reads it: without the job's own fields."""
        return self.model_dump(mode="json", exclude=set(JOB_FIELDS))

    def fingerprint(self) -> dict[str, Any]:
        """What an Idempotency-Key is checked against: the spec, and the name, labels and
        webhook events only when given, so that a request without them keeps the fingerprint
        it always had."""
        out = self.spec_json()
        if self.name is not None:
            out["name"] = self.name
        if self.labels:
            out["labels"] = self.labels
        if "webhook_events" in self.model_fields_set:
            out["webhook_events"] = list(self.webhook_events)
        return out


# --- POST /v1/jobs?dry_run=true ---------------------------------------------------------------


class MemoryTerm(BaseModel):
    what: str = Field(
        description="What the memory holds.",
        examples=["the student's weights, gradients and AdamW state"],
    )
    bytes: int = Field(description="Its estimated size, in bytes.", examples=[363438080])
    field: str = Field(description="The spec field that shrinks it.", examples=["model"])


class MemoryEstimate(BaseModel):
    """The job's estimated peak memory (app.services.job_estimate) and the budget it was
    checked against."""

    peak_bytes: int = Field(
        description="The peak phase's terms, times overhead_factor.", examples=[5976353922]
    )
    phase: str = Field(
        description="The phase of the job with the largest peak.",
        examples=["oBERT pruning step", "recovery"],
    )
    terms: list[MemoryTerm] = Field(description="What the peak phase holds.")
    overhead_factor: float = Field(
        description="Allocator fragmentation and what is left out.", examples=[1.15]
    )
    budget_bytes: int = Field(description="The worker's memory budget.", examples=[8589934592])
    budget_setting: str = Field(
        description="The setting the budget comes from.", examples=["WORKER_MEMORY_BUDGET_BYTES"]
    )


class TimeStep(BaseModel):
    name: str = Field(
        description="The part of the job: a counted one (a training stage, a pruning step), "
        "the fixed part or export.",
        examples=["export"],
    )
    seconds: float = Field(description="Its estimated seconds.", examples=[42.5])
    flops: float | None = Field(
        description="Its counted floating-point operations, if any.", examples=[4.874e13, None]
    )
    source: str = Field(
        description="Where its seconds come from (settings, constants).",
        examples=["4.87e+13 FLOP at ESTIMATE_TRAIN_FLOPS_PER_S (4.3e+10 FLOP/s)"],
    )


class TimeEstimate(BaseModel):
    """The job's estimated run time: each part's floating-point operations at the training
    throughput, a fixed part and the export's, checked against the per-job time limit."""

    seconds: float = Field(
        description="The job's estimated run time, in seconds.", examples=[4400.0]
    )
    steps: list[TimeStep] = Field(description="What the seconds are made of; they sum to them.")
    flops_per_s: float = Field(
        description="The training throughput assumed, in floating-point operations a second.",
        examples=[4.3e10],
    )
    flops_per_s_setting: str = Field(
        description="The setting the throughput comes from.",
        examples=["ESTIMATE_TRAIN_FLOPS_PER_S"],
    )
    limit_s: int = Field(description="The per-job time limit, in seconds.", examples=[43200])
    limit_setting: str = Field(
        description="The setting the limit comes from.", examples=["JOB_TIME_LIMIT_S"]
    )
    field: str = Field(
        description="The spec field that shortens the job most.",
        examples=["training.recovery_epochs"],
    )


class JobDryRun(BaseModel):
    """What a submission would do, without doing it: the spec as it would be stored (its
    recipe merged in, defaults filled, an uploaded model and data set by their ids) and the
    estimates it passed. Nothing is stored or queued; an Idempotency-Key is not used."""

    dry_run: Literal[True] = Field(
        default=True, description="Always true: nothing was submitted.", examples=[True]
    )
    spec: dict[str, Any] = Field(
        description="The spec as the job would store it.",
        examples=[{"model": "minilm-l6", "dataset": {"name": "sst2"}, "recipe": "obert-80@2"}],
    )
    name: str | None = Field(
        description="The submission's name; null: none.", examples=["sst2-obert-80"]
    )
    labels: dict[str, str] = Field(
        description="The submission's labels.", examples=[{"team": "search"}]
    )
    webhook: JobWebhook | None = Field(description="As the job would have it; None: no webhook.")
    memory_estimate: MemoryEstimate | None = Field(
        description="None: the model's config is unknown, so no estimate is made."
    )
    time_estimate: TimeEstimate | None = Field(description="None with memory_estimate.")
