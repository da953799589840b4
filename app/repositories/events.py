"""Numbering a job's events: `job_event.seq` is 1, 2, 3, ... per job (the API's event id, SSE
`id:` and `Last-Event-ID`), handed out by the job's `job_event_seq` counter row.

`number_event` runs before every JobEvent insert, whoever writes it (the API's
app.repositories.jobs, the reaper's app.repositories.recovery, the worker's worker.job_store,
tests): it is registered on the JobEvent mapper when this module is imported, and every
module that writes events imports it (app.db.session does too, so every session the
application makes numbers them). An event written without it fails its insert (`seq` is NOT
NULL) instead of going unnumbered. Imports only the models: no cycle with app.db.session.

`latest_telemetry` reads a job's newest `telemetry` event (app.services.job_eta's input)."""

from __future__ import annotations

import uuid

from sqlalchemy import Uuid, bindparam, event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.expression import Executable

from app.db.models import JobEvent, JobEventSeq


def _next_seq_statement(dialect: str) -> Executable:
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        upsert(JobEventSeq)
        .values(job_id=bindparam("job_id", type_=Uuid()), last_seq=1)
        .on_conflict_do_update(
            index_elements=[JobEventSeq.job_id], set_={"last_seq": JobEventSeq.last_seq + 1}
        )
        .returning(JobEventSeq.last_seq)
    )


# Built once per dialect: the statement runs for every event written.
_NEXT_SEQ = {name: _next_seq_statement(name) for name in ("postgresql", "sqlite")}


def next_seq(connection: Connection, job_id: uuid.UUID) -> int:
    """The job's next event number, in one atomic upsert: the counter row stays write-locked
    until the transaction ends on PostgreSQL (SQLite serialises writers), so two writers
    never get the same number."""
    stmt = _NEXT_SEQ["postgresql" if connection.dialect.name == "postgresql" else "sqlite"]
    return int(connection.execute(stmt, {"job_id": job_id}).scalar_one())


def number_event(_mapper: Mapper[JobEvent], connection: Connection, target: JobEvent) -> None:
    """before_insert: the event's number, several events of one job in one flush included."""
    target.seq = next_seq(connection, target.job_id)


# The (job_id, seq) unique index, read backwards: stops at the newest telemetry event.
_LATEST_TELEMETRY = (
    select(JobEvent)
    .where(JobEvent.job_id == bindparam("job_id"), JobEvent.kind == "telemetry")
    .order_by(JobEvent.seq.desc())
    .limit(1)
)


def latest_telemetry(session: Session, job_id: uuid.UUID) -> JobEvent | None:
    """The job's newest `telemetry` event, of any attempt."""
    return session.scalars(_LATEST_TELEMETRY, {"job_id": job_id}).first()


def install() -> None:
    """Register number_event on JobEvent (once, however often this is called)."""
    if not event.contains(JobEvent, "before_insert", number_event):
        event.listen(JobEvent, "before_insert", number_event)


install()
