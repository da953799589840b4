"""No job lost: requeue running jobs whose worker died, and (the transactional outbox) hand to
the broker queued jobs that never reached it.

A running job's worker writes heartbeat_at every heartbeat_interval_s. A job whose heartbeat
is older than heartbeat_stale_s, and whose advisory lock (PostgreSQL) no live worker holds,
goes back to queued, or ends failed with worker_lost once it has been started max_attempts
times. Queued jobs the API could not publish (broker down) are published here; a duplicate
delivery is a no-op, since the worker's claim is atomic and exclusive.

Runs every reaper_interval_s on a daemon thread inside each worker process, and once on
`python -m app reap`. Imports neither torch nor the worker.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.repositories import recovery as recovery_repo
from app.services.periodic import PeriodicLoop, start_once
from app.services.webhook_outbox import record_terminal
from app.settings import Settings, get_settings

log = logging.getLogger("scalpel.reaper")
BATCH = 100

SessionFactory = Callable[[], Session]
Publish = Callable[[uuid.UUID], None]


@dataclass
class ReapReport:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    alive: list[uuid.UUID] = field(default_factory=list)  # stale heartbeat, lock still held
    dispatched: list[uuid.UUID] = field(default_factory=list)
    undispatched: int = 0  # due, but the broker refused them


def _default_publish(job_id: uuid.UUID) -> None:
    from app.queue import enqueue_compress

    enqueue_compress(job_id)


def _default_factory() -> SessionFactory:
    from app.db.session import get_sessionmaker

    return get_sessionmaker()


def reap_lost(
    factory: SessionFactory, settings: Settings, report: ReapReport, *, now: datetime
) -> None:
    """Requeue (or fail) running jobs whose worker is gone, in one transaction."""
    before = now - timedelta(seconds=settings.heartbeat_stale_s)
    with factory() as s:
        for job in recovery_repo.lock_stale_running(s, before=before, limit=BATCH):
            last = job.heartbeat_at or job.started_at
            if not recovery_repo.worker_gone(s, job.id):
                log.warning(
                    "job %s: no heartbeat since %s but worker %s still holds it",
                    job.id, last, job.worker_id,
                )  # fmt: skip
                report.alive.append(job.id)
                continue
            lost = f"worker {job.worker_id} lost (no heartbeat since {last})"
            if job.attempts >= settings.max_attempts:
                recovery_repo.fail_lost(
                    s, job, f"{lost}; the job was started {job.attempts} times "
                    f"(max_attempts {settings.max_attempts}) without finishing",
                )  # fmt: skip
                record_terminal(s, job)
                report.failed.append(job.id)
                log.warning("job %s failed: %s", job.id, lost)
            else:
                recovery_repo.requeue(
                    s, job, f"{lost}; requeued after attempt {job.attempts} "
                    f"of {settings.max_attempts}",
                )  # fmt: skip
                report.requeued.append(job.id)
                log.warning("job %s requeued: %s", job.id, lost)
        s.commit()


def dispatch_pending(
    factory: SessionFactory,
    settings: Settings,
    publish: Publish,
    report: ReapReport,
    *,
    now: datetime,
    also: Sequence[uuid.UUID] = (),
) -> None:
    """Publish queued jobs the broker never got (or lost) and record dispatched_at. Rows stay
    locked while they are published, so two reapers never publish the same job; the first
    publish that fails (broker down) ends the pass, the rest wait for the next one."""
    with factory() as s:
        due = recovery_repo.lock_undispatched(
            s,
            quiet_before=now - timedelta(seconds=settings.dispatch_grace_s),
            redispatch_before=now - timedelta(seconds=settings.dispatch_stale_s),
            also=also,
            limit=BATCH,
        )
        sent: list[uuid.UUID] = []
        for job in due:
            try:
                publish(job.id)
            except Exception:
                log.warning(
                    "broker unreachable; %d queued job(s) stay undispatched",
                    len(due) - len(sent), exc_info=True,
                )  # fmt: skip
                report.undispatched = len(due) - len(sent)
                break
            sent.append(job.id)
        recovery_repo.set_dispatched(s, sent, utcnow())
        s.commit()
    report.dispatched.extend(sent)
    for job_id in sent:
        log.info("job %s dispatched by the outbox", job_id)


def reap_once(
    factory: SessionFactory | None = None,
    settings: Settings | None = None,
    publish: Publish | None = None,
) -> ReapReport:
    """One pass: lost running jobs back to queued (or failed), then queued jobs published."""
    factory = factory or _default_factory()
    settings = settings or get_settings()
    report = ReapReport()
    reap_lost(factory, settings, report, now=utcnow())
    dispatch_pending(
        factory, settings, publish or _default_publish, report, now=utcnow(),
        also=report.requeued,
    )  # fmt: skip
    return report


class ReaperLoop(PeriodicLoop):
    """reap_once every interval_s on a daemon thread, until stop()."""

    def __init__(
        self,
        interval_s: float,
        *,
        factory: SessionFactory | None = None,
        settings: Settings | None = None,
        publish: Publish | None = None,
    ) -> None:
        super().__init__(
            "scalpel-reaper", interval_s, lambda: reap_once(factory, settings, publish)
        )


def start_background_reaper(settings: Settings | None = None) -> PeriodicLoop | None:
    """Start this process's reaper thread once (None when reaper_interval_s is 0)."""
    settings = settings or get_settings()
    if settings.reaper_interval_s <= 0:
        return None
    interval = settings.reaper_interval_s
    return start_once(lambda: ReaperLoop(interval, settings=settings), "scalpel-reaper")
