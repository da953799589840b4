"""/v1/models: upload, list and read Hugging Face model archives."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from app.deps import SessionDep, SettingsDep
from app.openapi import problems
from app.schemas.uploads import ModelOut, ModelPage
from app.services import models as service

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.post("", status_code=201, response_model=ModelOut, responses=problems(413, 422))
def upload_model(
    file: Annotated[UploadFile, File(description="An HF model folder as .zip or .tar.gz.")],
    session: SessionDep,
    settings: SettingsDep,
    name: Annotated[str | None, Form(max_length=255)] = None,
) -> ModelOut:
    model = service.upload(session, settings, file.file, file.filename or "model", name)
    return ModelOut.of(model)


@router.get("", response_model=ModelPage, responses=problems(422))
def list_models(
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    page_token: Annotated[str | None, Query(max_length=512)] = None,
) -> ModelPage:
    items, token = service.list_models(session, settings, limit, page_token)
    return ModelPage(items=[ModelOut.of(m) for m in items], next_page_token=token)


@router.get("/{model_id}", response_model=ModelOut, responses=problems(404))
def get_model(model_id: str, session: SessionDep) -> ModelOut:
    return ModelOut.of(service.get(session, model_id))
