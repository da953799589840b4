"""/v1/models: upload, list and read Hugging Face model archives."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

from app.architectures import SUPPORTED
from app.deps import CallerDep, KnownQueryOnly, SessionDep, SettingsDep
from app.idempotency import IdempotencyKeyHeader, respond
from app.openapi import problems
from app.routes.params import Limit, ModelId, PageToken
from app.schemas.uploads import ModelOut, ModelPage
from app.services import deletion
from app.services import models as service
from app.services.idempotency import upload_sha256

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.post("", status_code=201, response_model=ModelOut, responses=problems(409, 413, 422))
def upload_model(
    file: Annotated[
        UploadFile,
        File(
            description="An HF model folder (save_pretrained) as .zip or .tar.gz, of a family "
            f"in the architecture table: {SUPPORTED}; any other is 422 unsupported_architecture.",
            examples=["minilm-l6.tar.gz"],
        ),
    ],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    name: Annotated[
        str | None,
        Form(
            max_length=255,
            description="The model's name (default: the file name, less its extension).",
            examples=["minilm-l6"],
        ),
    ] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    filename = file.filename or "model"
    return respond(
        session, caller, request, idempotency_key, status=201,
        body_sha256=lambda: upload_sha256(file.file, {"filename": filename, "name": name}),
        run=lambda: ModelOut.of(service.upload(session, settings, file.file, filename, name,
                                               caller)),
    )  # fmt: skip


@router.get("", response_model=ModelPage, responses=problems(422), dependencies=[KnownQueryOnly])
def list_models(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    limit: Limit = None,
    page_token: PageToken = None,
) -> ModelPage:
    items, token = service.list_models(session, settings, caller, limit, page_token)
    return ModelPage(items=[ModelOut.of(m) for m in items], next_page_token=token)


@router.get("/{model_id}", response_model=ModelOut, responses=problems(404))
def get_model(model_id: ModelId, session: SessionDep, caller: CallerDep) -> ModelOut:
    return ModelOut.of(service.get(session, model_id, caller))


@router.delete("/{model_id}", status_code=204, responses=problems(404, 409))
def delete_model(
    model_id: ModelId, session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    """The model and its file. While a queued or running job uses it: a 409
    `model_in_use` naming the job. Finished jobs that used it keep their records."""
    deletion.delete_model(session, settings, model_id, caller)
    return Response(status_code=204)
