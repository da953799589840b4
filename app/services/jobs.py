"""Job submission, queries and cancellation.

A submission is checked before it is queued: the model and the data set exist; the data set
serves the spec's task; an uploaded model's trained head fits the task and the data set (a
model without one gets a new head); the dataset options are the task's own; the spec fits the
model and the worker's memory and time budgets (app.services.spec_limits)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.catalog import TASK_FACTS
from app.db.models import TERMINAL_STATUSES, Job, JobEvent, UploadedDataset, UploadedModel
from app.db.session import after_commit
from app.errors import Conflict, NotFound, Unprocessable
from app.pagination import check_limit, decode_token, encode_token
from app.repositories import jobs as jobs_repo
from app.repositories import uploads as uploads_repo
from app.repositories.jobs import JobFilter
from app.schemas.job_spec import BUILTIN_DATASETS, BUILTIN_MODELS, TASK_DATASET_OPTIONS, JobSpec
from app.schemas.job_submission import JOB_FIELDS
from app.schemas.jobs import JobOut, JobPage
from app.services import builtin_files, job_data_sizes, job_estimate, job_eta, spec_limits
from app.services.dispatch import enqueue_and_mark_dispatched
from app.services.job_cache import JobCache
from app.services.job_data_sizes import DataSizes
from app.services.webhook_outbox import check_submitted_url, record_terminal
from app.settings import Settings
from app.tenancy import Caller

# The head suffixes a trained head is recognised by (config.json `architectures`), in every
# family (RobertaForTokenClassification, DistilBertForQuestionAnswering, ...); any other
# architecture (BertModel, RobertaForMaskedLM, ...) has none, and the job adds one.
HEAD_SUFFIXES = tuple(dict.fromkeys(f.head_suffix for f in TASK_FACTS.values()))


def parse_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _check_model(session: Session, spec: JobSpec, tenant_id: uuid.UUID) -> UploadedModel | None:
    """Built-in, or uploaded by the job's own tenant (another tenant's is not found). The
    row is held FOR SHARE until the job is committed (see app.repositories.uploads)."""
    if spec.model in BUILTIN_MODELS:
        return None
    model_id = parse_id(spec.model)
    model = (
        uploads_repo.get_model(session, model_id, tenant_id=tenant_id, lock="share")
        if model_id
        else None
    )
    if model is None:
        raise NotFound(
            f"no built-in or uploaded model {spec.model!r}; built-ins: "
            f"{', '.join(BUILTIN_MODELS)}", code="model_not_found", field="model",
        )  # fmt: skip
    return model


# The column options of tabular data: a token-classification job names its tag column with
# tag_column, a question-answering data set has no columns to choose.
TABLE_TASKS = ("sequence_classification", "regression")


def _check_task_options(spec: JobSpec) -> None:
    """Each task-specific dataset option (doc_stride, tag_scheme, score_range, ...) is given
    only to a job of its task, and the table columns only to the tasks that read tables."""
    for option, task in TASK_DATASET_OPTIONS.items():
        if getattr(spec.dataset, option) is not None and task != spec.task:
            raise Unprocessable(
                f"dataset.{option} is a {task} option; this job's task is {spec.task}",
                code="invalid_option", field=f"dataset.{option}",
            )  # fmt: skip
    for option in ("text_columns", "label_column"):
        if getattr(spec.dataset, option) is not None and spec.task not in TABLE_TASKS:
            raise Unprocessable(
                f"dataset.{option} names a table column; a {spec.task} data set has none"
                + (" (its tags: dataset.tag_column)" if spec.task == "token_classification"
                   else ""), code="invalid_option", field=f"dataset.{option}",
            )  # fmt: skip


def _check_served_task(spec: JobSpec, served: str) -> None:
    if served != spec.task:
        raise Unprocessable(
            f"data set {spec.dataset.name!r} serves the {served} task; this job's task is "
            f"{spec.task}", code="task_mismatch", field="task",
        )  # fmt: skip


def _trained_head(config: dict[str, Any]) -> str | None:
    """The architecture of the checkpoint's trained task head, None when it has none."""
    archs = config.get("architectures")
    for arch in archs if isinstance(archs, list) else []:
        if isinstance(arch, str) and arch.endswith(HEAD_SUFFIXES):
            return arch
    return None


def _check_head(
    spec: JobSpec, config: dict[str, Any], num_labels: int | None, tags: Sequence[str] = ()
) -> None:
    """An uploaded model's trained head must be the task's (app.catalog head_suffix), with
    as many outputs as the data set has classes or tags (`num_labels`, None: unknown, or a
    question-answering job, whose head has none to count); a regression head has one (and
    no classification problem_type); a token head with an id2label has the data set's
    `tags` (when known), in their order, as the worker's check wants them (a head ordered
    otherwise would label every entity wrong)."""
    arch = _trained_head(config)
    if arch is None:
        return
    suffix = TASK_FACTS[spec.task].head_suffix
    if not arch.endswith(suffix):
        prefix = arch.removesuffix(next(s for s in HEAD_SUFFIXES if arch.endswith(s)))
        raise Unprocessable(
            f"the model is a {arch}: its trained head does not fit a {spec.task} job, which "
            f"needs a {prefix}{suffix} or a model without a trained head ({prefix}Model, "
            f"{prefix}ForMaskedLM: the job adds a new head)", code="head_mismatch",
            field="model",
        )  # fmt: skip
    outputs = job_estimate.head_labels(config)
    if num_labels is not None and outputs != num_labels:
        _wrong_size(spec, arch, outputs, num_labels)
    problem = config.get("problem_type")
    if spec.task == "regression" and problem not in (None, "regression"):
        raise Unprocessable(
            f"the model's head is a {problem} classifier, not a regression head",
            code="head_mismatch", field="model",
        )  # fmt: skip
    names = job_estimate.config_labels(config)
    if spec.task == "token_classification" and tags and names is not None and names != list(tags):
        raise Unprocessable(
            f"the model's trained head labels {names[:12]}; data set {spec.dataset.name!r} "
            f"has the tags {list(tags)[:12]} (in this order): give a model trained on these "
            "tags, or one without a trained head", code="head_mismatch", field="model",
        )  # fmt: skip


def _wrong_size(spec: JobSpec, arch: str, outputs: int, num_labels: int) -> None:
    if spec.task == "regression":
        needed = "a regression head has 1"
    else:
        kind = "tags" if spec.task == "token_classification" else "classes"
        needed = f"data set {spec.dataset.name!r} has {num_labels} {kind}"
    raise Unprocessable(
        f"the model's trained head ({arch}) has {outputs} outputs; {needed}",
        code="head_mismatch", field="model",
    )  # fmt: skip


def _check_dataset(
    session: Session, spec: JobSpec, settings: Settings, tenant_id: uuid.UUID
) -> DataSizes:
    """The data set exists, serves the job's task (and has the columns asked for); returns
    its sizes."""
    name = spec.dataset.name
    if name in BUILTIN_DATASETS:
        builtin = BUILTIN_DATASETS[name]
        _check_served_task(spec, builtin.task)
        if spec.dataset.tag_column is not None:
            raise Unprocessable(
                f"built-in data set {name!r} reads its own tag column",
                code="invalid_option", field="dataset.tag_column",
            )  # fmt: skip
        builtin_files.check_dataset_installed(name, settings.data_dir)
        return job_data_sizes.builtin_sizes(name, settings.data_dir)
    dataset_id = parse_id(name)
    dataset = (
        uploads_repo.get_dataset(session, dataset_id, tenant_id=tenant_id, lock="share")
        if dataset_id
        else None
    )
    if dataset is None:
        raise NotFound(
            f"no built-in or uploaded data set {name!r}; built-ins: "
            f"{', '.join(BUILTIN_DATASETS)}", code="dataset_not_found", field="dataset.name",
        )  # fmt: skip
    _check_served_task(spec, dataset.task)
    _check_columns(spec, dataset)
    _check_tag_column(spec, dataset)
    _check_score_range(spec, dataset)
    # The recorded classes or tags count only for the column they were read from.
    target = spec.dataset.tag_column or spec.dataset.label_column
    same = target in (None, dataset.label_column)
    labels = job_data_sizes.task_labels(spec.task, dataset.labels) if same else None
    return job_data_sizes.uploaded_sizes(dataset.num_rows, labels, spec.task)


def _check_columns(spec: JobSpec, dataset: UploadedDataset) -> None:
    d = spec.dataset
    asked = [*((c, "text_columns") for c in d.text_columns or []),
             (d.label_column, "label_column"), (d.score_column, "score_column")]  # fmt: skip
    for col, option in asked:
        if col is not None and col not in dataset.columns:
            shown = ", ".join(dataset.columns) or "none (not a table)"
            raise Unprocessable(
                f"data set has no column {col!r}; columns: {shown}",
                code="unknown_column", field=f"dataset.{option}",
            )  # fmt: skip


def _check_tag_column(spec: JobSpec, dataset: UploadedDataset) -> None:
    """The tags an upload recorded are those of its tag column; another column's were never
    checked (their scheme, their names), so a job reads the recorded one."""
    asked = spec.dataset.tag_column
    if asked is not None and asked != dataset.label_column:
        raise Unprocessable(
            f"data set {dataset.id} was checked with its tags in {dataset.label_column!r}, "
            f"not {asked!r}: upload it again with that tag_column",
            code="invalid_option", field="dataset.tag_column",
        )  # fmt: skip


def _check_score_range(spec: JobSpec, dataset: UploadedDataset) -> None:
    """dataset.score_range holds every score the upload found in its score column (the
    worker's: score_column, else label_column, else the recorded one)."""
    rng = spec.dataset.score_range
    low, high = dataset.options.get("score_min"), dataset.options.get("score_max")
    column = spec.dataset.score_column or spec.dataset.label_column
    same_column = column in (None, dataset.label_column)
    if rng is None or low is None or high is None or not same_column:
        return
    if not rng[0] <= low <= high <= rng[1]:
        raise Unprocessable(
            f"the data set's scores run from {low:g} to {high:g}, outside score_range "
            f"[{rng[0]:g}, {rng[1]:g}]", code="invalid_option", field="dataset.score_range",
        )  # fmt: skip


def _tags(session: Session, spec: JobSpec, tenant_id: uuid.UUID) -> list[str]:
    """A token-classification data set's tags, in id order ([] for the other tasks)."""
    if spec.task != "token_classification":
        return []
    name = spec.dataset.name
    if name in BUILTIN_DATASETS:
        return list(BUILTIN_DATASETS[name].tags)
    dataset_id = parse_id(name)
    dataset = (
        uploads_repo.get_dataset(session, dataset_id, tenant_id=tenant_id) if dataset_id else None
    )
    return list(dataset.labels) if dataset is not None else []


def _stored_spec(spec: JobSpec, model: UploadedModel | None) -> dict[str, Any]:
    """The spec as stored: without the job's own fields (name, labels), an uploaded model
    and data set named by their canonical ids (what list filters and the in-use check of a
    deletion compare)."""
    stored = spec.model_dump(mode="json", exclude=set(JOB_FIELDS))
    if model is not None:
        stored["model"] = str(model.id)
    dataset_id = None if spec.dataset.name in BUILTIN_DATASETS else parse_id(spec.dataset.name)
    if dataset_id is not None:
        stored["dataset"]["name"] = str(dataset_id)
    return stored


@dataclass(frozen=True)
class Checked:
    """A spec that passed every submission check: as it is stored, its webhook_url, the
    model's config and the estimate (both None when the config is unknown: no estimate)."""

    stored: dict[str, Any]
    webhook_url: str | None
    config: dict[str, Any] | None
    estimate: job_estimate.Estimate | None


def check(session: Session, spec: JobSpec, settings: Settings, caller: Caller) -> Checked:
    """Every check a submission runs (a dry run runs them alone); raises what it would."""
    _check_task_options(spec)
    model = _check_model(session, spec, caller.tenant_id)
    config = spec_limits.model_config(spec.model, model.config if model is not None else None)
    limits = spec_limits.Limits.of(settings)
    spec_limits.check_spec(spec, config)
    sizes = _check_dataset(session, spec, settings, caller.tenant_id)
    if model is not None:
        _check_head(spec, model.config, sizes.num_labels, _tags(session, spec, caller.tenant_id))
    estimate = None
    if config is not None:
        limited = job_data_sizes.limited(sizes, spec)
        estimate = spec_limits.check_estimate(spec, config, limited, limits)
    webhook = str(spec.webhook_url) if spec.webhook_url is not None else None
    if webhook is not None:
        check_submitted_url(webhook, settings)
    return Checked(_stored_spec(spec, model), webhook, config, estimate)


def submit(
    session: Session, spec: JobSpec, settings: Settings, caller: Caller, *,
    name: str | None = None, labels: dict[str, str] | None = None,
    webhook_events: Sequence[str] | None = None,
) -> Job:  # fmt: skip
    """The job belongs to the caller's tenant, an admin's too."""
    checked = check(session, spec, settings, caller)
    job = jobs_repo.create_queued(
        session, caller.tenant_id, checked.stored, checked.webhook_url, name=name,
        labels=labels, webhook_events=webhook_events,
    )  # fmt: skip
    job_id = job.id
    after_commit(session, lambda: _dispatch(session, job_id))
    return job


def _dispatch(session: Session, job_id: uuid.UUID) -> None:
    enqueue_and_mark_dispatched(session, job_id)


def get(session: Session, raw_id: str, caller: Caller, *, for_update: bool = False) -> Job:
    """Another tenant's job is not found, like one that does not exist."""
    job_id = parse_id(raw_id)
    job = (
        jobs_repo.get(session, job_id, tenant_id=caller.scope, for_update=for_update)
        if job_id
        else None
    )
    if job is None:
        raise NotFound(f"no job {raw_id!r}", code="job_not_found")
    return job


def read(session: Session, raw_id: str, caller: Caller, cache: JobCache | None = None) -> JobOut:
    """The status read: the job as the API shows it (a running one with its time-left
    estimate, app.services.job_eta), left in the cache for the next one."""
    generation = cache.generation() if cache is not None else 0
    job = get(session, raw_id, caller)
    out = JobOut.of(job, eta_at=job_eta.eta_at(session, job))
    if cache is not None:
        cache.store(generation, job.tenant_id, out)
    return out


def list_page(
    session: Session, settings: Settings, caller: Caller, *, limit: int | None,
    page_token: str | None, where: JobFilter | None = None,
) -> JobPage:  # fmt: skip
    """Newest first; `where` (app.services.job_filters) narrows the list, and a page token
    goes on from where its page ended under the same filters."""
    n = check_limit(limit, settings)
    jobs, nxt = jobs_repo.list_page(
        session, tenant_id=caller.scope, cursor=decode_token(page_token), limit=n, where=where
    )
    items = [JobOut.of(j, eta_at=job_eta.eta_at(session, j)) for j in jobs]
    return JobPage(items=items, next_page_token=encode_token(nxt) if nxt else None)


def events(
    session: Session, settings: Settings, raw_id: str, caller: Caller, *, after: int | None,
    limit: int | None,
) -> tuple[list[JobEvent], int | None]:  # fmt: skip
    job = get(session, raw_id, caller)
    n = check_limit(limit, settings)
    items = jobs_repo.events_after(session, job.id, after, n)
    return items, items[-1].seq if len(items) == n else None


def cancel(
    session: Session, raw_id: str, caller: Caller, *, keep_partial_artifacts: bool = False,
    base_url: str | None = None,
) -> Job:  # fmt: skip
    """queued: canceled now. running: the worker stops at its next step and deletes the
    artifacts it registered so far, unless keep_partial_artifacts. Otherwise 409. base_url:
    the app's PUBLIC_BASE_URL, for the webhook's artifacts_url."""
    job = get(session, raw_id, caller, for_update=True)
    if job.status in TERMINAL_STATUSES:
        raise Conflict(f"job already {job.status}", code="job_finished")
    if job.status == "queued":
        jobs_repo.cancel_queued(session, job)
        record_terminal(session, job, base_url=base_url)
    else:
        jobs_repo.request_cancel(session, job, keep_partial_artifacts=keep_partial_artifacts)
    session.flush()
    return job
