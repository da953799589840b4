"""Artifacts: a job's list, and downloads with digest headers, ETag and Range."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import FileResponse, RedirectResponse

from app.deps import CallerDep, KnownQueryOnly, SessionDep, SettingsDep
from app.openapi import problems
from app.routes.params import ArtifactId, JobId
from app.schemas.artifacts import ArtifactList, ArtifactOut
from app.services import artifacts as service

router = APIRouter(tags=["artifacts"])


@router.get(
    "/v1/jobs/{job_id}/artifacts", response_model=ArtifactList, responses=problems(404),
    dependencies=[KnownQueryOnly],
)  # fmt: skip
def job_artifacts(job_id: JobId, session: SessionDep, caller: CallerDep) -> ArtifactList:
    """Expired artifacts (past the retention setting) are listed with `expired_at`."""
    return ArtifactList(items=[ArtifactOut.of(a) for a in service.for_job(session, job_id, caller)])


DOWNLOAD_PATH = "/v1/artifacts/{artifact_id}"


RANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "Part of the file (Range)"},
    304: {"description": "Not modified (If-None-Match)"},
    400: {"description": "Malformed Range header", "content": {"text/plain": {}}},
    416: {
        "description": "Range not satisfiable (Content-Range: bytes */size)",
        "content": {"text/plain": {}},
    },
    **problems(404, 410),
}


@router.head(
    DOWNLOAD_PATH, operation_id="head_artifact", response_class=FileResponse,
    responses={**RANGE_RESPONSES, **problems(422)}, dependencies=[KnownQueryOnly],
)  # fmt: skip
@router.get(
    DOWNLOAD_PATH,
    operation_id="download_artifact",
    response_class=FileResponse,
    responses={
        200: {"description": "The file", "content": {"application/octet-stream": {}}},
        307: {
            "description": "S3 backend: Location is a presigned URL for the file (expires "
            "after S3_PRESIGN_EXPIRY_S); `?redirect=false` streams it through instead",
        },
        **RANGE_RESPONSES,
        **problems(422),
    },
    dependencies=[KnownQueryOnly],
)
def download_artifact(
    artifact_id: ArtifactId,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    if_none_match: Annotated[
        str | None,
        Header(description="ETags held (the file's is its quoted sha256): 304 on a match."),
    ] = None,
    range: Annotated[
        str | None, Header(description="`bytes=start-end`; FileResponse reads it.")
    ] = None,
    redirect: Annotated[
        bool, Query(description="S3 backend: false streams the file instead of a 307.")
    ] = True,
) -> Response:
    """Streams the file. Headers: ETag and X-Checksum-SHA256 (hex) and Repr-Digest
    (RFC 9530) of the whole file; honours Range (206/416) and If-None-Match (304).
    With the S3 backend: 307 to a presigned URL unless `redirect=false`."""
    dl = service.download(session, settings, artifact_id, caller, redirect=redirect)
    if service.etag_matches(if_none_match, dl.etag):
        return Response(status_code=304, headers=dl.headers)
    if dl.redirect_url is not None:
        return RedirectResponse(dl.redirect_url, status_code=307, headers=dl.headers)
    assert dl.path is not None
    return FileResponse(
        dl.path, media_type=dl.artifact.media_type, filename=dl.artifact.filename,
        headers=dl.headers,
    )  # fmt: skip
