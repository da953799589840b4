"""The worker's repository: the only worker module that queries the database.

Every write is its own short transaction, so the API sees progress as it happens and a
crash loses at most the last step. Rows handed to the pipeline are plain dataclasses, never
ORM objects bound to a session that has closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.locks import advisory_key
from app.db.models import Artifact, Job, JobEvent, UploadedDataset, UploadedModel
from app.repositories import events as _events  # noqa: F401  (numbers every JobEvent)
from app.services import webhook_outbox as outbox
from app.storage import StoredObject

SessionFactory = Callable[[], Session]
RUNNABLE = ("queued", "running")


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    spec: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class ClaimResult:
    job: ClaimedJob | None  # None: nothing to run
    status: str | None  # the job's status after the claim (None: no such job)


@dataclass(frozen=True)
class Completion:
    status: str  # the status the row ends with
    discarded: list[str] = field(default_factory=list)  # store keys no row names any more


@dataclass(frozen=True)
class ModelRecord:
    id: uuid.UUID
    sha256: str
    storage_key: str
    archive_format: str
    architecture: str
    num_labels: int | None
    config: dict[str, Any]
    name: str = ""  # as the user uploaded it: what job errors call the model


@dataclass(frozen=True)
class DatasetRecord:
    """An uploaded data set as its checks recorded it (app.db.models.UploadedDataset says
    what each field holds for each task)."""

    id: uuid.UUID
    format: str  # csv | tsv | jsonl | conll | squad
    storage_key: str
    columns: list[str]
    text_columns: list[str]
    label_column: str
    labels: list[str]
    num_rows: int
    task: str = "sequence_classification"
    # token_classification: the file's tag scheme ("IOB1" or "IOB2"), found at upload
    tag_scheme: str | None = None
    # regression: the lowest and highest score of the file
    score_range: tuple[float, float] | None = None


class JobStore:
    def __init__(self, session_factory: SessionFactory, *, base_url: str | None = None) -> None:
        """base_url: Settings.public_base_url, for the terminal webhooks' artifacts_url."""
        self._factory = session_factory
        self._base_url = base_url

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def thread_safe(self) -> bool:
        """True when sessions come from an Engine's pool, so another thread (the heartbeat)
        may open its own; False for sessions sharing one Connection (tests)."""
        session = self._factory()
        try:
            return isinstance(session.get_bind(), Engine)
        finally:
            session.close()

    # --- exclusivity -------------------------------------------------------------------------

    @contextmanager
    def exclusive(self, job_id: uuid.UUID) -> Iterator[bool]:
        """Yield True when this process may run the job: on PostgreSQL a session-level advisory
        lock held on a dedicated connection for the whole run (released by the server if the
        process dies, so a redelivery after a crash can take over, but a duplicate delivery
        while the first runs cannot). Elsewhere (SQLite: one embedded worker) always True; the
        conditional claim still refuses finished and canceled jobs."""
        session = self._factory()
        try:
            bind = session.get_bind()
        finally:
            session.close()
        if bind.dialect.name != "postgresql":
            yield True
            return
        owned = isinstance(bind, Engine)
        conn: Connection = bind.connect() if isinstance(bind, Engine) else bind
        key = advisory_key(job_id)
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            if owned:
                conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    if owned:
                        conn.commit()
        finally:
            if owned:
                conn.close()

    # --- lifecycle ---------------------------------------------------------------------------

    def status(self, job_id: uuid.UUID) -> str | None:
        with self._session() as s:
            return s.scalar(select(Job.status).where(Job.id == job_id))

    def claim(self, job_id: uuid.UUID, worker_id: str, *, max_attempts: int) -> ClaimResult:
        """Atomically move a queued (or crashed-while-running) job to running. A job whose
        cancel was requested before it started ends canceled; one past max_attempts ends
        failed; a finished one is left alone."""
        with self._session() as s:
            job = s.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()
            if job is None:
                return ClaimResult(None, None)
            if job.status not in RUNNABLE:
                return ClaimResult(None, job.status)
            now = utcnow()
            if job.cancel_requested:
                self._terminal(s, job, "canceled", message="canceled before start")
                return ClaimResult(None, "canceled")
            if job.attempts >= max_attempts:
                self._terminal(
                    s,
                    job,
                    "failed",
                    code="too_many_attempts",
                    message=f"the job was started {job.attempts} times without finishing",
                )
                return ClaimResult(None, "failed")
            job.status = "running"
            job.started_at = now
            job.heartbeat_at = now
            job.attempts += 1
            job.worker_id = worker_id[:255]
            job.progress = 0.0
            job.stage = None
            job.error_code = None
            job.error_message = None
            s.add(
                JobEvent(
                    job_id=job.id,
                    kind="status",
                    status="running",
                    message=f"attempt {job.attempts} on {worker_id}",
                )
            )
            outbox.record_running(s, job, now)  # the webhook outbox: same transaction
            return ClaimResult(ClaimedJob(job.id, dict(job.spec), job.attempts), "running")

    def _terminal(
        self, s: Session, job: Job, status: str, *, code: str | None = None,
        message: str | None = None,
    ) -> None:  # fmt: skip
        job.status = status
        job.finished_at = utcnow()
        job.error_code = code
        job.error_message = message
        if status == "succeeded":
            job.progress = 1.0
        s.add(
            JobEvent(
                job_id=job.id,
                kind="status",
                status=status,
                message=message,
                data={"code": code} if code else None,
            )
        )
        outbox.record_terminal(s, job, base_url=self._base_url)  # same transaction

    def finish(
        self,
        job_id: uuid.UUID,
        status: str,
        *,
        code: str | None = None,
        message: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> str:
        """End a running job; returns the status the row ends with (a job no longer running,
        e.g. finished by someone else, is left as it is)."""
        with self._session() as s:
            job = s.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
            if job.status != "running":
                return job.status
            if metrics:
                job.metrics = {**(job.metrics or {}), **metrics}
            self._terminal(s, job, status, code=code, message=message)
            return status

    def succeed(
        self, job_id: uuid.UUID, *, metrics: dict[str, Any], stage_seconds: dict[str, float]
    ) -> Completion:
        """The terminal commit of a job whose pipeline finished. The row is locked, as the
        API's cancel locks it, so a cancel either committed before this (the job ends
        canceled, its artifact rows deleted in this same transaction unless the cancel asked
        to keep them; `discarded` names the store objects to delete after the commit) or
        comes after it and finds the job finished (409)."""
        with self._session() as s:
            job = s.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
            if job.status != "running":
                return Completion(job.status)
            if not job.cancel_requested:
                job.metrics = {**(job.metrics or {}), **metrics}
                self._terminal(s, job, "succeeded")
                return Completion("succeeded")
            discarded = [] if job.keep_partial_artifacts else self._discard(s, job_id)
            job.metrics = {**(job.metrics or {}), "stage_seconds": stage_seconds}
            self._terminal(s, job, "canceled", message="canceled while the job was finishing")
            return Completion("canceled", discarded)

    def heartbeat(self, job_id: uuid.UUID) -> bool:
        """Record that the worker running the job is alive; False once the job is no longer
        running (finished, or requeued by the reaper)."""
        with self._session() as s:
            done = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(heartbeat_at=utcnow())
                .returning(Job.id)
            )
            return done.first() is not None

    # --- progress ----------------------------------------------------------------------------

    def set_stage(self, job_id: uuid.UUID, stage: str, progress: float) -> bool:
        """Record a stage start; returns cancel_requested."""
        with self._session() as s:
            cancel = s.scalar(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(stage=stage, progress=progress)
                .returning(Job.cancel_requested)
            )
            s.add(JobEvent(job_id=job_id, kind="stage", stage=stage, progress=progress))
            return bool(cancel)

    def set_progress(self, job_id: uuid.UUID, stage: str | None, progress: float) -> bool:
        """Record progress; returns cancel_requested."""
        with self._session() as s:
            cancel = s.scalar(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(progress=progress)
                .returning(Job.cancel_requested)
            )
            s.add(JobEvent(job_id=job_id, kind="progress", stage=stage, progress=progress))
            return bool(cancel)

    def merge_metrics(
        self, job_id: uuid.UUID, metrics: dict[str, Any], *, stage: str | None = None
    ) -> None:
        with self._session() as s:
            job = s.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
            job.metrics = {**(job.metrics or {}), **metrics}
            s.add(JobEvent(job_id=job_id, kind="metrics", stage=stage, data=metrics))

    def add_metrics_event(
        self, job_id: uuid.UUID, values: dict[str, Any], *, stage: str | None = None
    ) -> None:
        """A metrics event only (per-step values the job's own metrics do not keep); a
        pruning step's (`prune_step`) also queues its webhook, in the same transaction."""
        with self._session() as s:
            s.add(JobEvent(job_id=job_id, kind="metrics", stage=stage, data=values))
            if outbox.PRUNE_STEP_KEY in values and (job := s.get(Job, job_id)) is not None:
                outbox.record_pruning_step(s, job, values, stage)

    def add_telemetry(
        self, job_id: uuid.UUID, stage: str | None, progress: float, data: dict[str, Any]
    ) -> bool:
        """A `telemetry` event (worker.pipelines.telemetry), with the job's progress written
        in the same transaction (so a cached status read is dropped and the next one sees
        the new time-left estimate); returns cancel_requested."""
        with self._session() as s:
            cancel = s.scalar(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(progress=progress)
                .returning(Job.cancel_requested)
            )
            s.add(
                JobEvent(job_id=job_id, kind="telemetry", stage=stage, progress=progress, data=data)
            )
            return bool(cancel)

    def is_cancel_requested(self, job_id: uuid.UUID) -> bool:
        with self._session() as s:
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    # --- artifacts and uploads ---------------------------------------------------------------

    def add_artifact(
        self,
        job_id: uuid.UUID,
        *,
        kind: str,
        filename: str,
        media_type: str,
        stored: StoredObject,
    ) -> uuid.UUID:
        """One artifact per (job, kind): a retried job replaces what an earlier attempt left."""
        with self._session() as s:
            s.execute(delete(Artifact).where(Artifact.job_id == job_id, Artifact.kind == kind))
            art = Artifact(
                id=uuid.uuid4(),
                job_id=job_id,
                kind=kind,
                filename=filename,
                media_type=media_type,
                size_bytes=stored.size_bytes,
                sha256=stored.sha256,
                storage_key=stored.key,
            )
            s.add(art)
            return art.id

    def keeps_partial_artifacts(self, job_id: uuid.UUID) -> bool:
        """Whether the cancel of the running job asked to keep what it registered so far."""
        with self._session() as s:
            return bool(s.scalar(select(Job.keep_partial_artifacts).where(Job.id == job_id)))

    def discard_artifacts(self, job_id: uuid.UUID) -> list[str]:
        """Delete the job's artifact rows; returns the storage keys no other row (another
        job's artifact, an uploaded model or data set: the store is content-addressed) still
        names, which the caller may delete from the store."""
        with self._session() as s:
            return self._discard(s, job_id)

    @staticmethod
    def _discard(s: Session, job_id: uuid.UUID) -> list[str]:
        gone = delete(Artifact).where(Artifact.job_id == job_id)
        keys = set(s.scalars(gone.returning(Artifact.storage_key)))
        if not keys:
            return []
        used: set[str] = set()
        for column in (Artifact.storage_key, UploadedModel.storage_key,
                       UploadedDataset.storage_key):  # fmt: skip
            used.update(s.scalars(select(column).where(column.in_(keys))))
        return sorted(keys - used)

    def get_uploaded_model(self, model_id: uuid.UUID) -> ModelRecord | None:
        with self._session() as s:
            m = s.get(UploadedModel, model_id)
            if m is None:
                return None
            return ModelRecord(
                id=m.id,
                sha256=m.sha256,
                storage_key=m.storage_key,
                archive_format=m.archive_format,
                architecture=m.architecture,
                num_labels=m.num_labels,
                config=dict(m.config or {}),
                name=m.name,
            )

    def get_uploaded_dataset(self, dataset_id: uuid.UUID) -> DatasetRecord | None:
        with self._session() as s:
            d = s.get(UploadedDataset, dataset_id)
            if d is None:
                return None
            return DatasetRecord(
                id=d.id,
                format=d.format,
                storage_key=d.storage_key,
                columns=list(d.columns),
                text_columns=list(d.text_columns),
                label_column=d.label_column,
                labels=list(d.labels),
                num_rows=d.num_rows,
                task=d.task,
                tag_scheme=d.options.get("tag_scheme"),
                score_range=(
                    (d.options["score_min"], d.options["score_max"])
                    if "score_min" in d.options
                    else None
                ),
            )
