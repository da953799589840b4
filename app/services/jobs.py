"""Job submission, queries and cancellation."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.db.models import TERMINAL_STATUSES, Job, JobEvent, UploadedDataset, UploadedModel
from app.db.session import after_commit
from app.errors import Conflict, NotFound, Unprocessable
from app.pagination import check_limit, decode_token, encode_token
from app.repositories import jobs as jobs_repo
from app.repositories import uploads as uploads_repo
from app.schemas.job_spec import BUILTIN_DATASETS, BUILTIN_MODELS, JobSpec
from app.schemas.jobs import JobOut, JobPage
from app.services import job_estimate, spec_limits
from app.services.dispatch import enqueue_and_mark_dispatched
from app.services.job_cache import JobCache
from app.services.job_estimate import DataSizes
from app.services.webhook_outbox import check_submitted_url, record_terminal
from app.settings import Settings
from app.tenancy import Caller

DATA_DIR_DATASETS = ("sst2", "agnews", "rte")


def parse_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _check_model(session: Session, spec: JobSpec, tenant_id: uuid.UUID) -> UploadedModel | None:
    """Built-in, or uploaded by the job's own tenant (another tenant's is not found)."""
    if spec.model in BUILTIN_MODELS:
        return None
    model_id = parse_id(spec.model)
    model = uploads_repo.get_model(session, model_id, tenant_id=tenant_id) if model_id else None
    if model is None:
        raise NotFound(
            f"no built-in or uploaded model {spec.model!r}; built-ins: "
            f"{', '.join(BUILTIN_MODELS)}", code="model_not_found", field="model",
        )  # fmt: skip
    return model


def _check_dataset(
    session: Session, spec: JobSpec, settings: Settings, tenant_id: uuid.UUID
) -> DataSizes:
    """The data set exists (and has the columns asked for); returns its sizes."""
    name = spec.dataset.name
    if name in BUILTIN_DATASETS:
        if name in DATA_DIR_DATASETS and not (settings.data_dir / name / "train.tsv").is_file():
            raise Unprocessable(
                f"built-in data set {name!r} is not installed in the data directory",
                code="dataset_unavailable", field="dataset.name",
            )  # fmt: skip
        return job_estimate.builtin_sizes(name, settings.data_dir)
    dataset_id = parse_id(name)
    dataset = (
        uploads_repo.get_dataset(session, dataset_id, tenant_id=tenant_id) if dataset_id else None
    )
    if dataset is None:
        raise NotFound(
            f"no built-in or uploaded data set {name!r}; built-ins: "
            f"{', '.join(BUILTIN_DATASETS)}", code="dataset_not_found", field="dataset.name",
        )  # fmt: skip
    _check_columns(spec, dataset)
    label = spec.dataset.label_column
    labels = len(dataset.labels) if label in (None, dataset.label_column) else None
    return job_estimate.uploaded_sizes(dataset.num_rows, labels)


def _check_columns(spec: JobSpec, dataset: UploadedDataset) -> None:
    for col in spec.dataset.text_columns or []:
        if col not in dataset.columns:
            raise Unprocessable(
                f"data set has no column {col!r}; columns: {', '.join(dataset.columns)}",
                code="unknown_column", field="dataset.text_columns",
            )  # fmt: skip
    label = spec.dataset.label_column
    if label is not None and label not in dataset.columns:
        raise Unprocessable(
            f"data set has no column {label!r}; columns: {', '.join(dataset.columns)}",
            code="unknown_column", field="dataset.label_column",
        )  # fmt: skip


def submit(session: Session, spec: JobSpec, settings: Settings, caller: Caller) -> Job:
    """The job belongs to the caller's tenant, an admin's too."""
    model = _check_model(session, spec, caller.tenant_id)
    config = spec_limits.model_config(spec.model, model.config if model is not None else None)
    limits = spec_limits.Limits.of(settings)
    spec_limits.check_spec(spec, config)
    sizes = _check_dataset(session, spec, settings, caller.tenant_id)
    if config is not None:
        spec_limits.check_estimate(spec, config, job_estimate.limited(sizes, spec), limits)
    webhook = str(spec.webhook_url) if spec.webhook_url is not None else None
    if webhook is not None:
        check_submitted_url(webhook, settings)
    job = jobs_repo.create_queued(session, caller.tenant_id, spec.model_dump(mode="json"), webhook)
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
    """The status read: the job as the API shows it, left in the cache for the next one."""
    generation = cache.generation() if cache is not None else 0
    job = get(session, raw_id, caller)
    out = JobOut.of(job)
    if cache is not None:
        cache.store(generation, job.tenant_id, out)
    return out


def list_page(
    session: Session, settings: Settings, caller: Caller, *, limit: int | None,
    page_token: str | None, status: str | None,
) -> JobPage:  # fmt: skip
    n = check_limit(limit, settings)
    jobs, nxt = jobs_repo.list_page(
        session, tenant_id=caller.scope, status=status, cursor=decode_token(page_token), limit=n
    )
    return JobPage(
        items=[JobOut.of(j) for j in jobs], next_page_token=encode_token(nxt) if nxt else None
    )


def events(
    session: Session, settings: Settings, raw_id: str, caller: Caller, *, after: int | None,
    limit: int | None,
) -> tuple[list[JobEvent], int | None]:  # fmt: skip
    job = get(session, raw_id, caller)
    n = check_limit(limit, settings)
    items = jobs_repo.events_after(session, job.id, after, n)
    return items, items[-1].seq if len(items) == n else None


def cancel(
    session: Session, raw_id: str, caller: Caller, *, keep_partial_artifacts: bool = False
) -> Job:
    """queued: canceled now. running: the worker stops at its next step and deletes the
    artifacts it registered so far, unless keep_partial_artifacts. Otherwise 409."""
    job = get(session, raw_id, caller, for_update=True)
    if job.status in TERMINAL_STATUSES:
        raise Conflict(f"job already {job.status}", code="job_finished")
    if job.status == "queued":
        jobs_repo.cancel_queued(session, job)
        record_terminal(session, job)
    else:
        jobs_repo.request_cancel(session, job, keep_partial_artifacts=keep_partial_artifacts)
    session.flush()
    return job
