"""/v1/jobs: submit, list, read, events, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.deps import CallerDep, SessionDep, SessionFactoryDep, SettingsDep
from app.idempotency import IdempotencyKeyHeader, respond
from app.openapi import problems
from app.schemas.job_spec import JobSpec
from app.schemas.jobs import JobEventOut, JobEventPage, JobOut, JobPage, JobStatus
from app.services import event_stream as sse
from app.services import jobs as service
from app.services.idempotency import json_sha256
from app.services.job_cache import JobCache

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
KEEP_PARTIAL = (
    "A running job keeps the artifacts it registered before it stopped (by default they are "
    "deleted from the registry and the store)."
)

SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of events (JSON), or with `Accept: text/event-stream` a stream: "
        "`id: <event id>`, `event: <kind>`, `data: <event JSON>`; heartbeat comments; a final "
        "`event: end` whose data is the finished job. Event ids number the job's own events "
        "1, 2, 3, ...",
        "content": {sse.SSE_MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}


@router.post("", status_code=202, response_model=JobOut, responses=problems(404, 409, 422))
def submit_job(
    spec: JobSpec,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    return respond(
        session, caller, request, idempotency_key, status=202,
        body_sha256=lambda: json_sha256(spec.model_dump(mode="json")),
        run=lambda: JobOut.of(service.submit(session, spec, settings, caller)),
        headers=lambda body: {"Location": f"/v1/jobs/{body['id']}"},
    )  # fmt: skip


# The two polling reads are async, their database work on the threadpool: a sync route would
# take a second thread hop to validate its response.
@router.get("", response_model=JobPage, responses=problems(422))
async def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    page_token: Annotated[str | None, Query(max_length=512)] = None,
    status: JobStatus | None = None,
) -> JobPage:
    return await run_in_threadpool(
        service.list_page, session, settings, caller, limit=limit, page_token=page_token,
        status=status,
    )  # fmt: skip


@router.get("/{job_id}", response_model=JobOut, responses=problems(404))
async def get_job(job_id: str, request: Request, session: SessionDep, caller: CallerDep) -> JobOut:
    cache: JobCache = request.app.state.job_cache
    return await cache.read_through(
        service.parse_id(job_id), caller,
        lambda: run_in_threadpool(service.read, session, job_id, caller, cache),
    )  # fmt: skip


@router.get(
    "/{job_id}/events",
    response_model=JobEventPage,
    responses={**SSE_RESPONSE, **problems(404, 422, 429)},
)
def job_events(
    job_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    factory: SessionFactoryDep,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="Return the job's events after this event id."),
    ] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=2**63 - 1, description="SSE: resume after it."),
    ] = None,
) -> JobEventPage | Response:
    """A JSON page of events; with `Accept: text/event-stream`, a live Server-Sent Events
    stream of them that ends with an `end` event carrying the finished job."""
    if sse.wants_stream(request.headers.get("accept")):
        start = last_event_id if last_event_id is not None else after
        return sse.open_stream(request, session, factory, settings, job_id, caller, start)
    events, next_after = service.events(session, settings, job_id, caller, after=after, limit=limit)
    return JobEventPage(items=[JobEventOut.of(e) for e in events], next_after=next_after)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses={202: {"model": JobOut, "description": "Cancel requested"}, **problems(404, 409)},
)
def cancel_job(
    job_id: str,
    session: SessionDep,
    caller: CallerDep,
    response: Response,
    keep_partial_artifacts: Annotated[bool, Query(description=KEEP_PARTIAL)] = False,
) -> JobOut:
    """A queued job is canceled at once (200); a running one stops at its next step (202)."""
    job = service.cancel(session, job_id, caller, keep_partial_artifacts=keep_partial_artifacts)
    response.status_code = 200 if job.status == "canceled" else 202
    return JobOut.of(job)
