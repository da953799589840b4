"""/v1/jobs: submit, list (filtered), read, events, cancel, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.db.models import JOB_STATUSES
from app.deps import CallerDep, KnownQueryOnly, SessionDep, SessionFactoryDep, SettingsDep
from app.idempotency import IdempotencyKeyHeader, respond
from app.openapi import problems
from app.routes.params import JobId, Limit, PageToken
from app.schemas.job_submission import JobDryRun, JobSubmission
from app.schemas.jobs import JobEventOut, JobEventPage, JobOut, JobPage
from app.services import deletion
from app.services import event_stream as sse
from app.services import job_submission as submission
from app.services import jobs as service
from app.services.idempotency import json_sha256
from app.services.job_cache import JobCache
from app.services.job_filters import job_filter

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


DRY_RUN = (
    "Run every check of the submission and answer 200 with the spec as it would be stored and "
    "the memory and time estimates (with what they are made of), without creating the job, "
    "queueing it or using the Idempotency-Key. A spec the submission would refuse gets the "
    "same 422."
)
DRY_RUN_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"model": JobDryRun, "description": "dry_run=true: what the submission would do."}
}


@router.post(
    "", status_code=202, response_model=JobOut,
    responses={**DRY_RUN_RESPONSE, **problems(404, 409, 422)}, dependencies=[KnownQueryOnly],
)  # fmt: skip
def submit_job(
    spec: JobSubmission,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKeyHeader = None,
    dry_run: Annotated[bool, Query(description=DRY_RUN)] = False,
) -> Response:
    if dry_run:
        out = submission.dry_run(session, spec, settings, caller)
        return JSONResponse(out.model_dump(mode="json"), status_code=200)
    return respond(
        session, caller, request, idempotency_key, status=202,
        body_sha256=lambda: json_sha256(spec.fingerprint()),
        run=lambda: submission.submit(session, spec, settings, caller),
        headers=lambda body: {"Location": f"/v1/jobs/{body['id']}"},
    )  # fmt: skip


# The two polling reads are async, their database work on the threadpool: a sync route would
# take a second thread hop to validate its response.
@router.get("", response_model=JobPage, responses=problems(422), dependencies=[KnownQueryOnly])
async def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    limit: Limit = None,
    page_token: PageToken = None,
    status: Annotated[
        list[str] | None,
        Query(
            description=f"One of {', '.join(JOB_STATUSES)}; repeat for any of several.",
            json_schema_extra={"items": {"type": "string", "enum": list(JOB_STATUSES)}},
        ),
    ] = None,
    model: Annotated[
        str | None, Query(min_length=1, max_length=64, description="spec.model.")
    ] = None,
    dataset: Annotated[
        str | None, Query(min_length=1, max_length=255, description="spec.dataset.name.")
    ] = None,
    recipe: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="`name` (any version) or `name@version`."),
    ] = None,
    label: Annotated[
        list[str] | None,
        Query(description="`key=value`; repeat for several, all of which must match."),
    ] = None,
    created_after: Annotated[
        str | None, Query(max_length=64, description="RFC 3339 date-time; inclusive.")
    ] = None,
    created_before: Annotated[
        str | None, Query(max_length=64, description="RFC 3339 date-time; exclusive.")
    ] = None,
) -> JobPage:
    """Newest first; every filter given must match. A page token goes on from where its
    page ended (give it the same filters)."""
    where = job_filter(
        status=status, model=model, dataset=dataset, recipe=recipe, label=label,
        created_after=created_after, created_before=created_before,
    )  # fmt: skip
    return await run_in_threadpool(
        service.list_page, session, settings, caller, limit=limit, page_token=page_token,
        where=where,
    )  # fmt: skip


@router.get("/{job_id}", response_model=JobOut, responses=problems(404))
async def get_job(
    job_id: JobId, request: Request, session: SessionDep, caller: CallerDep
) -> JobOut:
    cache: JobCache = request.app.state.job_cache
    return await cache.read_through(
        service.parse_id(job_id), caller,
        lambda: run_in_threadpool(service.read, session, job_id, caller, cache),
    )  # fmt: skip


@router.get(
    "/{job_id}/events",
    response_model=JobEventPage,
    responses={**SSE_RESPONSE, **problems(404, 422, 429)},
    dependencies=[KnownQueryOnly],
)
def job_events(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    factory: SessionFactoryDep,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="Return the job's events after this event id."),
    ] = None,
    limit: Limit = None,
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
    responses={
        202: {"model": JobOut, "description": "Cancel requested"},
        **problems(404, 409, 422),
    },
    dependencies=[KnownQueryOnly],
)
def cancel_job(
    job_id: JobId,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    response: Response,
    keep_partial_artifacts: Annotated[bool, Query(description=KEEP_PARTIAL)] = False,
) -> JobOut:
    """A queued job is canceled at once (200); a running one stops at its next step (202)."""
    job = service.cancel(
        session, job_id, caller, keep_partial_artifacts=keep_partial_artifacts,
        base_url=settings.public_base_url,
    )  # fmt: skip
    response.status_code = 200 if job.status == "canceled" else 202
    return JobOut.of(job)


@router.delete("/{job_id}", status_code=204, responses=problems(404, 409))
def delete_job(
    job_id: JobId, session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    """A finished job (succeeded, failed or canceled), with its events, artifacts (their files
    too) and work folders. A queued or running job is a 409 `job_active`: cancel it first,
    and delete it once it has stopped. While one of its webhook deliveries is still to be
    sent: a 409 `webhook_pending` saying when to retry (Retry-After)."""
    deletion.delete_job(session, settings, job_id, caller)
    return Response(status_code=204)
