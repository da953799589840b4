"""Server-Sent Events for a job's history: each job_event as `id/event/data` (the id is the
event's number within its job), resumable from Last-Event-ID, a comment on every heartbeat of
silence and a final `end` event with the job's terminal state. Every poll opens and closes its
own short session (run on a worker thread), so no database connection is held while the
stream is open. An API key holds at most `events_streams_per_key` streams open at once in one
API process (app.services.stream_slots); one more is a 429."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from fastapi import Request
from sqlalchemy.orm import Session

from app.db.models import TERMINAL_STATUSES
from app.repositories import jobs as jobs_repo
from app.schemas.jobs import JobEventOut, JobOut
from app.services import jobs as jobs_service
from app.services.stream_slots import SlotResponse, take_stream_slot
from app.settings import Settings
from app.tenancy import Caller

SSE_MEDIA_TYPE = "text/event-stream"
POLL_BATCH = 500
SessionFactory = Callable[[], Session]


@dataclass
class Poll:
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, kind, json)
    job: dict[str, Any] | None = None  # set once the job is finished (or gone: {})


def wants_stream(accept: str | None) -> bool:
    return accept is not None and SSE_MEDIA_TYPE in accept.lower()


def frame(event: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def poll(factory: SessionFactory, job_id: uuid.UUID, after: int | None) -> Poll:
    """The job's status is read before its events: a terminal status read here means its
    terminal event (written in the same transaction) is among the events read next."""
    with factory() as session:
        job = jobs_repo.get(session, job_id, tenant_id=None)
        out = Poll()
        if job is None:
            out.job = {}
            return out
        finished = job.status in TERMINAL_STATUSES
        end = JobOut.of(job).model_dump(mode="json") if finished else None
        events = jobs_repo.events_after(session, job_id, after, POLL_BATCH)
        out.events = [(e.seq, e.kind, JobEventOut.of(e).model_dump_json()) for e in events]
        if end is not None and len(events) < POLL_BATCH:
            out.job = end
        return out


async def stream(
    factory: SessionFactory, job_id: uuid.UUID, after: int | None, settings: Settings
) -> AsyncIterator[str]:
    """Events after `after`, then `end` once the job is finished; closes after
    events_stream_max_s without an end (the client reconnects with Last-Event-ID)."""
    started = last_sent = time.monotonic()
    yield f"retry: {int(settings.events_poll_interval_s * 1000)}\n\n"
    while True:
        got = await anyio.to_thread.run_sync(poll, factory, job_id, after)
        for event_id, kind, data in got.events:
            yield frame(kind, data, event_id)
            after = event_id
            last_sent = time.monotonic()
        if got.job is not None:
            yield frame("end", json.dumps(got.job))
            return
        now = time.monotonic()
        if now - started >= settings.events_stream_max_s:
            return
        if now - last_sent >= settings.events_heartbeat_s:
            yield ": heartbeat\n\n"
            last_sent = now
        await anyio.sleep(settings.events_poll_interval_s)


def open_stream(
    request: Request, session: Session, factory: SessionFactory, settings: Settings,
    raw_id: str, caller: Caller, after: int | None,
) -> SlotResponse:  # fmt: skip
    """404 for a job the caller may not see, then 429 when the caller's key already holds
    events_streams_per_key streams here; both before anything is streamed."""
    job = jobs_service.get(session, raw_id, caller)
    release = take_stream_slot(request, settings)
    return SlotResponse(
        stream(factory, job.id, after, settings), release, media_type=SSE_MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )  # fmt: skip
