"""Remove what nothing will ever read again: store objects no row names, upload temporaries a
killed API left, and the checkpoints and scratch of jobs that ended failed or canceled or
were deleted (on every host: a deletion removes them on the API's host only); and
with artifact_retention_days set, expire the artifacts of jobs that ended longer ago than
that (app.services.retention) before looking for orphans.

An upload writes its file to the store before its row is committed, and a failure in
between (or a killed process) leaves an object no row names. The store is content addressed,
so an object is removed only when no model, data set or artifact row names its key and it is
older than sweep_grace_s: an upload in progress has written its object moments before its
row, and a put of content already stored refreshes the object's time (LocalStore and S3Store
both), so the grace period covers a re-upload of an old orphan too. Each key is checked
again (row and time) just before it is removed, and removed only if its time has not moved
since that check (`delete_unless_modified`: a re-upload in between refreshes it before its
row is written). On the local store that is exact (the file is renamed aside, then its
time compared); S3 has no conditional delete, so a touch landing in the round trip between
the last time read and the delete still loses its object (see S3Store). A registry that
names no key at all while the store is not empty is taken for a misconfiguration (another
database) and the store is left alone.

Runs every sweep_interval_s in the reaper's loop (each worker process) and on every pass of
`python -m app reap`. Works on the local store and on S3 (then also the local copies under
storage_dir/s3-cache)."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.repositories import store_refs
from app.services.retention import expire_artifacts
from app.settings import Settings, get_settings
from app.storage import KEY_PATTERN, ArtifactStore
from app.stores import get_store

log = logging.getLogger("scalpel.sweeper")
SessionFactory = Callable[[], Session]
CHUNK = 500
CHECKPOINTS = "checkpoints"  # worker.pipelines.stages.checkpoints: <work_dir>/<job id>/checkpoints
SCRATCH = "jobs"  # worker.runner: <work_dir>/jobs/<job id>


@dataclass
class SweepReport:
    objects: list[str] = field(default_factory=list)  # store keys removed
    bytes_freed: int = 0
    temporaries: list[Path] = field(default_factory=list)
    job_folders: list[Path] = field(default_factory=list)
    skipped: str | None = None  # why the store was left alone
    expired: list[uuid.UUID] = field(default_factory=list)  # artifacts past their retention
    expired_objects: list[str] = field(default_factory=list)  # their store keys removed


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


def _old_files(folder: Path, cutoff: datetime, prefix: str = "tmp") -> Iterator[Path]:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        when = _mtime(path)
        if path.name.startswith(prefix) and path.is_file() and when is not None and when < cutoff:
            yield path


def sweep_store(
    session: Session, store: ArtifactStore, named: set[str], cutoff: datetime, report: SweepReport
) -> None:
    orphans = [o for o in store.iter_objects() if o.key not in named and o.modified_at < cutoff]
    if orphans and not named:
        report.skipped = "the registry names no store object; is this the store's database?"
        log.warning("sweeper: %d unnamed object(s) left alone: %s", len(orphans), report.skipped)
        return
    for obj in orphans:
        modified = store.modified_at(obj.key)
        if modified is None or modified >= cutoff or store_refs.is_named(session, obj.key):
            continue  # gone, or written again / named since the listing
        # A put of the same content between the row check and here refreshes the time (and
        # its row follows): removed only if the time is still the one just judged.
        if not store.delete_unless_modified(obj.key, modified):
            continue
        report.objects.append(obj.key)
        report.bytes_freed += obj.size_bytes
        log.info("sweeper: removed orphan %s (%d bytes, since %s)", obj.key, obj.size_bytes,
                 obj.modified_at.isoformat())  # fmt: skip


def sweep_s3_cache(cache: Path, named: set[str], cutoff: datetime, report: SweepReport) -> None:
    """Local copies of S3 objects no row names (and download temporaries), once old."""
    if not cache.is_dir():
        return
    for path in cache.rglob("*"):
        when = _mtime(path)
        if not path.is_file() or when is None or when >= cutoff:
            continue
        key = path.relative_to(cache).as_posix()
        if path.name.startswith("tmp") or (KEY_PATTERN.fullmatch(key) and key not in named):
            path.unlink(missing_ok=True)
            report.temporaries.append(path)


def _job_folders(work_dir: Path) -> dict[uuid.UUID, list[Path]]:
    """<work_dir>/<job id> (checkpoints) and <work_dir>/jobs/<job id> (scratch)."""
    found: dict[uuid.UUID, list[Path]] = {}
    for parent in (work_dir, work_dir / SCRATCH):
        if not parent.is_dir():
            continue
        for path in parent.iterdir():
            try:
                job_id = uuid.UUID(path.name)
            except ValueError:
                continue
            if path.is_dir() and str(job_id) == path.name:
                found.setdefault(job_id, []).append(path)
    return found


def _remove(path: Path, job_id: uuid.UUID, why: str, report: SweepReport) -> None:
    shutil.rmtree(path, ignore_errors=True)
    report.job_folders.append(path)
    log.info("sweeper: removed %s of job %s (%s)", path, job_id, why)


def sweep_job_folders(
    session: Session, work_dir: Path, cutoff: datetime, report: SweepReport
) -> None:
    """The folders of jobs that ended failed or canceled before the cutoff, and those, last
    changed before it, of jobs with no row: deleted (their deletion removes them on the API's
    host only). A job's row is committed before any worker makes its folders, and the grace
    covers anything younger. A registry with no job at all is taken for a misconfiguration
    (another database): then only the first kind goes."""
    folders = _job_folders(work_dir)
    ids = list(folders)
    registry_has_jobs: bool | None = None
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for job_id in store_refs.dead_jobs(session, chunk, finished_before=cutoff):
            for path in folders[job_id]:
                _remove(path, job_id, "ended failed or canceled", report)
        deleted = store_refs.without_row(session, chunk)
        if deleted and registry_has_jobs is None:
            registry_has_jobs = store_refs.has_jobs(session)
            if not registry_has_jobs:
                log.warning("sweeper: the registry has no job; job folders left alone")
        for job_id in deleted if registry_has_jobs else ():
            for path in folders[job_id]:
                when = _mtime(path)
                if when is not None and when < cutoff:
                    _remove(path, job_id, "no job row: deleted", report)


def sweep_once(
    factory: SessionFactory | None = None,
    settings: Settings | None = None,
    store: ArtifactStore | None = None,
    now: datetime | None = None,
) -> SweepReport:
    """One pass over the store, the upload temporaries and the job folders."""
    settings = settings or get_settings()
    if factory is None:
        from app.db.session import get_sessionmaker

        factory = get_sessionmaker()
    store = store or get_store(settings)
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.sweep_grace_s)
    report = SweepReport()
    for folder in (settings.work_dir / "uploads", settings.storage_dir / "tmp"):
        for path in _old_files(folder, cutoff):
            path.unlink(missing_ok=True)
            report.temporaries.append(path)
    with factory() as session:
        report.expired, report.expired_objects = expire_artifacts(session, settings, store, now=now)
        named = store_refs.named_keys(session)
        sweep_store(session, store, named, cutoff, report)
        if settings.storage_backend == "s3":
            sweep_s3_cache(settings.storage_dir / "s3-cache", named, cutoff, report)
        sweep_job_folders(session, settings.work_dir, cutoff, report)
    log.info(
        "swept: %d orphan object(s) (%d bytes), %d temporary file(s), %d job folder(s)",
        len(report.objects), report.bytes_freed, len(report.temporaries),
        len(report.job_folders),
    )  # fmt: skip
    return report
