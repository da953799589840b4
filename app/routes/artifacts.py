"""Artifacts: a job's list, and downloads with digest headers, ETag and Range."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import FileResponse

from app.deps import CallerDep, SessionDep, SettingsDep
from app.openapi import problems
from app.schemas.artifacts import ArtifactList, ArtifactOut
from app.services import artifacts as service

router = APIRouter(tags=["artifacts"])


@router.get("/v1/jobs/{job_id}/artifacts", response_model=ArtifactList, responses=problems(404))
def job_artifacts(job_id: str, session: SessionDep, caller: CallerDep) -> ArtifactList:
    return ArtifactList(items=[ArtifactOut.of(a) for a in service.for_job(session, job_id, caller)])


DOWNLOAD_PATH = "/v1/artifacts/{artifact_id}"


@router.head(DOWNLOAD_PATH, operation_id="head_artifact", response_class=FileResponse)
@router.get(
    DOWNLOAD_PATH,
    operation_id="download_artifact",
    response_class=FileResponse,
    responses={
        200: {"description": "The file", "content": {"application/octet-stream": {}}},
        206: {"description": "Part of the file (Range)"},
        304: {"description": "Not modified (If-None-Match)"},
        416: {"description": "Range not satisfiable"},
        **problems(404),
    },
)
def download_artifact(
    artifact_id: str,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Streams the file. Headers: ETag and X-Checksum-SHA256 (hex) and Repr-Digest
    (RFC 9530) of the whole file; honours Range (206/416) and If-None-Match (304)."""
    dl = service.download(session, settings, artifact_id, caller)
    if service.etag_matches(if_none_match, dl.etag):
        return Response(status_code=304, headers=dl.headers)
    return FileResponse(
        dl.path, media_type=dl.artifact.media_type, filename=dl.artifact.filename,
        headers=dl.headers,
    )  # fmt: skip
