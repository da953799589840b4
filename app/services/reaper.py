"""No job lost: requeue running jobs whose worker died, and (the transactional outbox) hand to
the broker queued jobs that never reached it.

A running job's worker writes heartbeat_at every heartbeat_interval_s. A job whose heartbeat
is older than heartbeat_stale_s, and whose advisory lock (PostgreSQL) no live worker holds,
goes back to queued, or ends failed with worker_lost once it has been started max_attempts
times. Queued jobs the API could not publish (broker down) are published here; a duplicate
delivery is a no-op, since the worker's claim is atomic and exclusive.

A Redis broker that lost its messages (restarted empty, flushed) is noticed on the next pass:
a queued job handed over more than broker_loss_grace_s ago whose message is neither in the
queue nor taken (unacked) by a worker is published again at once, not after
dispatch_stale_s. Each pass counts the broker's messages (its run id and list lengths, one
round trip); the messages themselves are read only when it restarted or holds fewer than
there are dispatched queued jobs. The sweeper (app.services.sweeper), and with it artifact
retention (app.services.retention), runs every sweep_interval_s in the loop.

Runs every reaper_interval_s on a daemon thread inside each worker process, and once on
`python -m app reap`. Imports neither torch nor the worker.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.queue import BrokerCounts, BrokerSnapshot, broker_counts, broker_snapshot
from app.repositories import recovery as recovery_repo
from app.services.periodic import PeriodicLoop, start_once
from app.services.sweeper import sweep_once
from app.services.webhook_outbox import record_terminal
from app.settings import Settings, get_settings

log = logging.getLogger("scalpel.reaper")
BATCH = 100

SessionFactory = Callable[[], Session]
Publish = Callable[[uuid.UUID], None]
Snapshot = Callable[[Settings], BrokerSnapshot | None]
Counts = Callable[[Settings], BrokerCounts | None]
Read = TypeVar("Read", BrokerCounts, BrokerSnapshot)
_run_ids: dict[str, str] = {}  # broker URL -> the Redis run_id this process saw last


@dataclass
class ReapReport:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    alive: list[uuid.UUID] = field(default_factory=list)  # stale heartbeat, lock still held
    dispatched: list[uuid.UUID] = field(default_factory=list)
    undispatched: int = 0  # due, but the broker refused them
    redispatched: list[uuid.UUID] = field(default_factory=list)  # messages the broker lost
    broker_restarted: bool = False  # its run_id changed since this process's last pass


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
                record_terminal(s, job, base_url=settings.public_base_url)
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


def _note_run_id(settings: Settings, run_id: str, report: ReapReport) -> None:
    url = settings.effective_broker_url
    before = _run_ids.get(url)
    _run_ids[url] = run_id
    if before is not None and before != run_id:
        report.broker_restarted = True
        log.warning("the broker restarted (run_id %s, was %s)", run_id, before)


def _publish_all(jobs: Sequence[uuid.UUID], publish: Publish) -> list[uuid.UUID]:
    sent: list[uuid.UUID] = []
    for job_id in jobs:
        try:
            publish(job_id)
        except Exception:
            log.warning("broker unreachable while re-dispatching", exc_info=True)
            break
        sent.append(job_id)
    return sent


def _read_broker(read: Callable[[Settings], Read | None], settings: Settings) -> Read | None:
    """None when the broker is not Redis or could not be read (logged)."""
    try:
        return read(settings)
    except Exception:
        log.warning("broker not read; lost messages not looked for", exc_info=True)
        return None


def redispatch_lost(
    factory: SessionFactory,
    settings: Settings,
    publish: Publish,
    report: ReapReport,
    *,
    snapshot: Snapshot = broker_snapshot,
    counts: Counts = broker_counts,
) -> None:
    """Publish again the queued jobs whose message the broker no longer holds: not waiting in
    the queue and not taken (unacked) by any worker. The broker is counted first (run id and
    lengths, no message read); its messages are read only when it restarted or holds fewer
    messages than there are dispatched queued jobs. They are read before the rows are locked
    (a job handed over after `now` is not a candidate) and again after, so a message a
    worker was taking in between is not counted as lost. (A lost message hidden by as many
    stale ones, of jobs canceled while queued, shows once a worker drains those.)"""
    now = utcnow()
    counted = _read_broker(counts, settings)
    if counted is None:
        return
    _note_run_id(settings, counted.run_id, report)
    before = now - timedelta(seconds=settings.broker_loss_grace_s)
    with factory() as s:
        ids = recovery_repo.dispatched_queued_ids(s, dispatched_before=before)
        if not ids:
            return
        dispatched = recovery_repo.dispatched_queued_ids(s, dispatched_before=utcnow())
        if not report.broker_restarted and counted.messages >= len(dispatched):
            return  # every dispatched job may have its message: none is read
        first = _read_broker(snapshot, settings)
        if first is None:
            return
        missing = [i for i in ids if str(i) not in first.job_ids]
        if not missing:
            return
        locked = recovery_repo.lock_still_dispatched_queued(
            s, missing, dispatched_before=before, limit=BATCH
        )
        try:
            second = snapshot(settings)
        except Exception:
            log.warning("broker not read again; lost messages wait", exc_info=True)
            return
        held = second.job_ids if second is not None else frozenset()
        sent = _publish_all([j.id for j in locked if str(j.id) not in held], publish)
        recovery_repo.set_dispatched(s, sent, utcnow())
        s.commit()
    report.redispatched.extend(sent)
    if sent:
        log.warning(
            "the broker lost %d queued job(s) (run_id %s, %d message(s) held): re-dispatched "
            "%s", len(sent), first.run_id, first.messages, ", ".join(map(str, sent)),
        )  # fmt: skip


def reap_once(
    factory: SessionFactory | None = None,
    settings: Settings | None = None,
    publish: Publish | None = None,
    snapshot: Snapshot = broker_snapshot,
    counts: Counts = broker_counts,
) -> ReapReport:
    """One pass: lost running jobs back to queued (or failed), queued jobs whose message the
    broker lost published again, then queued jobs never handed over published."""
    factory = factory or _default_factory()
    settings = settings or get_settings()
    publish = publish or _default_publish
    report = ReapReport()
    reap_lost(factory, settings, report, now=utcnow())
    redispatch_lost(factory, settings, publish, report, snapshot=snapshot, counts=counts)
    dispatch_pending(
        factory, settings, publish, report, now=utcnow(), also=report.requeued,
    )  # fmt: skip
    return report


class ReaperLoop(PeriodicLoop):
    """reap_once every interval_s on a daemon thread, and the sweeper every
    sweep_interval_s (0: never), until stop()."""

    def __init__(
        self,
        interval_s: float,
        *,
        factory: SessionFactory | None = None,
        settings: Settings | None = None,
        publish: Publish | None = None,
    ) -> None:
        super().__init__("scalpel-reaper", interval_s, self._pass)
        self._factory = factory
        self._settings = settings
        self._publish = publish
        self._swept_at: float | None = None
        self.last_report: ReapReport | None = None

    def _pass(self) -> None:
        self.last_report = reap_once(self._factory, self._settings, self._publish)
        settings = self._settings or get_settings()
        every = settings.sweep_interval_s
        now = time.monotonic()
        if every > 0 and (self._swept_at is None or now - self._swept_at >= every):
            self._swept_at = now
            sweep_once(self._factory, settings)


def start_background_reaper(settings: Settings | None = None) -> PeriodicLoop | None:
    """Start this process's reaper thread once (None when reaper_interval_s is 0)."""
    settings = settings or get_settings()
    if settings.reaper_interval_s <= 0:
        return None
    interval = settings.reaper_interval_s
    return start_once(lambda: ReaperLoop(interval, settings=settings), "scalpel-reaper")
