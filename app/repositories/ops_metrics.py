"""Read-only queries behind /metrics: job counts, durations, heartbeats, webhook failures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from app.db.models import TERMINAL_STATUSES, Job

WEBHOOK_ATTEMPT_TABLE = "webhook_attempt"


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def jobs_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: int(n) for status, n in rows}


def finished_durations(session: Session) -> list[tuple[str, float]]:
    """(status, seconds from start to finish) of every finished job that started."""
    rows = session.execute(
        select(Job.status, Job.started_at, Job.finished_at).where(
            Job.status.in_(TERMINAL_STATUSES),
            Job.started_at.is_not(None),
            Job.finished_at.is_not(None),
        )
    )
    return [
        (status, max(0.0, (aware(end) - aware(start)).total_seconds()))
        for status, start, end in rows
        if start is not None and end is not None
    ]


def stage_seconds(session: Session) -> list[dict[str, Any]]:
    """Each finished job's metrics["stage_seconds"] ({stage: seconds}), where recorded."""
    stmt = select(Job.metrics["stage_seconds"]).where(Job.status.in_(TERMINAL_STATUSES))
    return [v for v in session.scalars(stmt) if isinstance(v, dict)]


@dataclass(frozen=True)
class Heartbeats:
    running: int
    newest: datetime | None  # the newest heartbeat_at among running jobs
    stale: int  # running jobs whose last sign of life is older than the cut-off


def running_heartbeats(session: Session, *, stale_before: datetime) -> Heartbeats:
    last_seen = func.coalesce(Job.heartbeat_at, Job.started_at, Job.updated_at)
    running, newest = session.execute(
        select(func.count(), func.max(Job.heartbeat_at)).where(Job.status == "running")
    ).one()
    stale = session.scalar(
        select(func.count()).where(Job.status == "running", last_seen < stale_before)
    )
    return Heartbeats(int(running), aware(newest) if newest else None, int(stale or 0))


def failed_webhook_attempts(session: Session) -> int | None:
    """Failed webhook delivery attempts, or None where there is no webhook_attempt table (or
    no column that says whether an attempt failed)."""
    conn = session.connection()
    insp = inspect(conn)
    if not insp.has_table(WEBHOOK_ATTEMPT_TABLE):
        return None
    columns = {c["name"] for c in insp.get_columns(WEBHOOK_ATTEMPT_TABLE)}
    if "succeeded" in columns:
        where = "NOT succeeded"
    elif "ok" in columns:
        where = "NOT ok"
    elif "outcome" in columns:
        where = "outcome NOT IN ('delivered', 'succeeded', 'success', 'ok')"
    elif "status_code" in columns:  # no 2xx answer (none at all: an error), or an error
        where = "status_code IS NULL OR status_code < 200 OR status_code >= 300"
        if "error" in columns:
            where += " OR error IS NOT NULL"
    elif "error" in columns:
        where = "error IS NOT NULL"
    else:
        return None
    sql = f"SELECT count(*) FROM {WEBHOOK_ATTEMPT_TABLE} WHERE {where}"
    return int(session.scalar(text(sql)) or 0)
