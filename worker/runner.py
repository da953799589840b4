"""Run one job: claim it, run the pipeline with a database-backed reporter, record the end.

The job row is the source of truth. A job is claimed atomically (queued, or running after a
worker crash, -> running; attempts + 1) and, on PostgreSQL, under an advisory lock held for the
whole run, so a duplicate delivery of a job that is running elsewhere is a no-op.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.logging import log_context
from app.settings import Settings, get_settings
from app.storage import ArtifactStore
from app.stores import get_store
from worker import budget
from worker.heartbeat import Heartbeat
from worker.job_store import JobStore, SessionFactory
from worker.pipelines.errors import JobCanceled, PipelineError
from worker.pipelines.progress import BaseReporter
from worker.pipelines.telemetry import TelemetryPolicy

log = logging.getLogger(__name__)


class DbReporter(BaseReporter):
    """Writes stages, throttled progress and metrics into the job row and job_event rows,
    each in its own short transaction; reads cancel_requested back on every write."""

    def __init__(
        self, store: JobStore, job_id: uuid.UUID, *, min_interval_s: float = 1.0,
        telemetry: TelemetryPolicy | None = None,
    ) -> None:  # fmt: skip
        super().__init__(min_interval_s=min_interval_s, telemetry=telemetry)
        self.store = store
        self.job_id = job_id

    def _write_stage(self, stage: str, progress: float) -> bool:
        log.info("job %s: stage %s (%.0f%%)", self.job_id, stage, progress * 100)
        return self.store.set_stage(self.job_id, stage, progress)

    def _write_progress(self, stage: str | None, progress: float) -> bool:
        return self.store.set_progress(self.job_id, stage, progress)

    def _write_metrics(self, stage: str | None, values: dict[str, Any]) -> None:
        self.store.merge_metrics(self.job_id, values, stage=stage)

    def _cancel_requested(self) -> bool:
        return self.store.is_cancel_requested(self.job_id)

    def _write_step_metrics(self, stage: str | None, values: dict[str, Any]) -> None:
        self.store.add_metrics_event(self.job_id, values, stage=stage)

    def _write_telemetry(self, stage: str | None, progress: float, data: dict[str, Any]) -> bool:
        return self.store.add_telemetry(self.job_id, stage, progress, data)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def discard_artifacts(jobs: JobStore, store: ArtifactStore, job_id: uuid.UUID) -> None:
    """A canceled job's partial artifacts: rows first, then the objects nothing else names."""
    delete_objects(store, job_id, jobs.discard_artifacts(job_id))


def delete_objects(store: ArtifactStore, job_id: uuid.UUID, keys: list[str]) -> None:
    """Store objects whose artifact rows are gone (and that nothing else names)."""
    for key in keys:
        try:
            store.delete(key)
        except Exception:
            log.warning("job %s: artifact object %s not deleted", job_id, key, exc_info=True)
    if keys:
        log.info("job %s: %d partial artifact object(s) deleted", job_id, len(keys))


def _configure_torch(settings: Settings) -> None:
    import torch

    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)


def run_job(
    job_id: str | uuid.UUID,
    *,
    session_factory: SessionFactory | None = None,
    settings: Settings | None = None,
    reporter_interval_s: float = 1.0,
    latency_iters: tuple[int, int] = (30, 2),
) -> str:
    """Run the job and return the status its row ends with (a no-op for a job that is
    finished, canceled, missing, or running in another process). Every line logged meanwhile
    (in this thread) carries the job's id."""
    with log_context(job_id=str(job_id)):
        return _run_job(
            job_id, session_factory=session_factory, settings=settings,
            reporter_interval_s=reporter_interval_s, latency_iters=latency_iters,
        )  # fmt: skip


def _run_job(
    job_id: str | uuid.UUID,
    *,
    session_factory: SessionFactory | None = None,
    settings: Settings | None = None,
    reporter_interval_s: float = 1.0,
    latency_iters: tuple[int, int] = (30, 2),
) -> str:
    from worker.pipelines.models import resolve_device, set_offline

    set_offline()
    from app.db.session import get_sessionmaker
    from app.schemas.job_spec import JobSpec
    from worker.pipelines.compress import run_pipeline
    from worker.pipelines.context import PipelineContext

    settings = settings or get_settings()
    jid = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    jobs = JobStore(session_factory or get_sessionmaker(), base_url=settings.public_base_url)
    with jobs.exclusive(jid) as mine:
        if not mine:
            log.warning("job %s is running in another process; skipping this delivery", jid)
            return jobs.status(jid) or "missing"
        claim = jobs.claim(jid, worker_id(), max_attempts=settings.max_attempts)
        if claim.job is None:
            log.info("job %s not run: status %s", jid, claim.status)
            return claim.status or "missing"
        _configure_torch(settings)
        store = get_store(settings)
        scratch = settings.work_dir / "jobs" / str(jid)
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True, exist_ok=True)
        reporter = DbReporter(jobs, jid, min_interval_s=reporter_interval_s)

        def add_artifact(kind: str, path: Path, filename: str, media_type: str) -> str:
            stored = store.put_file(path)
            jobs.add_artifact(
                jid, kind=kind, filename=filename, media_type=media_type, stored=stored
            )
            return stored.sha256

        # Sessions sharing one connection (tests) cannot be used from a second thread.
        interval = settings.heartbeat_interval_s if jobs.thread_safe() else 0.0
        heartbeat = Heartbeat(lambda: jobs.heartbeat(jid), interval, name=f"heartbeat {jid}")
        try:
            heartbeat.start()
            spec = JobSpec.model_validate(claim.job.spec)
            budget.check_at_start(spec, settings, jobs)
            ctx = PipelineContext(
                settings=settings,
                device=resolve_device(settings.device),
                reporter=reporter,
                uploads=jobs,
                store=store,
                scratch=scratch,
                add_artifact=add_artifact,
                job_id=str(jid),
                latency_iters=latency_iters,
            )
            with budget.MemoryWatchdog.of(settings, name=f"memory watchdog {jid}"):
                summary = run_pipeline(spec, ctx)
            # A cancel that came after the last check (the package stage) still wins: the
            # terminal commit reads it under the row lock the API's cancel takes too.
            done = jobs.succeed(jid, metrics=summary, stage_seconds=reporter.stage_seconds)
            if done.status == "canceled":
                log.info("job %s canceled while finishing", jid)
                delete_objects(store, jid, done.discarded)
            return done.status
        except JobCanceled as e:
            log.info("job %s canceled: %s", jid, e)
            if not jobs.keeps_partial_artifacts(jid):
                discard_artifacts(jobs, store, jid)
            return jobs.finish(
                jid, "canceled", message=str(e), metrics={"stage_seconds": reporter.stage_seconds}
            )
        except ValidationError as e:
            log.warning("job %s has an invalid spec: %s", jid, e)
            return jobs.finish(jid, "failed", code="invalid_spec", message=str(e)[:4000])
        except PipelineError as e:
            log.warning("job %s failed: %s: %s", jid, e.code, e.message)
            return jobs.finish(jid, "failed", code=e.code, message=e.message)
        except Exception as e:
            log.exception("job %s failed unexpectedly", jid)
            return jobs.finish(
                jid, "failed", code="internal_error", message=f"{type(e).__name__}: {e}"[:4000]
            )
        finally:
            heartbeat.stop()
            shutil.rmtree(scratch, ignore_errors=True)
