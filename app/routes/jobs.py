"""/v1/jobs: submit, list, read, events, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.deps import CallerDep, SessionDep, SettingsDep
from app.idempotency import IdempotencyKeyHeader, respond
from app.openapi import problems
from app.schemas.job_spec import JobSpec
from app.schemas.jobs import JobEventOut, JobEventPage, JobOut, JobPage, JobStatus
from app.services import jobs as service
from app.services.idempotency import json_sha256

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


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


@router.get("", response_model=JobPage, responses=problems(422))
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    page_token: Annotated[str | None, Query(max_length=512)] = None,
    status: JobStatus | None = None,
) -> JobPage:
    jobs, token = service.list_jobs(
        session, settings, caller, limit=limit, page_token=page_token, status=status
    )
    return JobPage(items=[JobOut.of(j) for j in jobs], next_page_token=token)


@router.get("/{job_id}", response_model=JobOut, responses=problems(404))
def get_job(job_id: str, session: SessionDep, caller: CallerDep) -> JobOut:
    return JobOut.of(service.get(session, job_id, caller))


@router.get("/{job_id}/events", response_model=JobEventPage, responses=problems(404, 422))
def job_events(
    job_id: str,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    after: Annotated[int | None, Query(ge=0, description="Return events with a larger id.")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> JobEventPage:
    events, next_after = service.events(session, settings, job_id, caller, after=after, limit=limit)
    return JobEventPage(items=[JobEventOut.of(e) for e in events], next_after=next_after)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses={202: {"model": JobOut, "description": "Cancel requested"}, **problems(404, 409)},
)
def cancel_job(job_id: str, session: SessionDep, caller: CallerDep, response: Response) -> JobOut:
    """A queued job is canceled at once (200); a running one stops at its next step (202)."""
    job = service.cancel(session, job_id, caller)
    response.status_code = 200 if job.status == "canceled" else 202
    return JobOut.of(job)
