"""/v1/datasets: upload, list and read CSV, TSV and JSONL data sets."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from app.deps import CallerDep, SessionDep, SettingsDep
from app.idempotency import IdempotencyKeyHeader, respond
from app.openapi import problems
from app.schemas.uploads import DatasetOut, DatasetPage
from app.services import datasets as service
from app.services.idempotency import upload_sha256

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=201, response_model=DatasetOut, responses=problems(409, 413, 422))
def upload_dataset(
    file: Annotated[UploadFile, File(description="A .csv, .tsv or .jsonl file, UTF-8.")],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    name: Annotated[str | None, Form(max_length=255)] = None,
    text_columns: Annotated[
        str | None, Form(max_length=512, description="Comma separated; one or two columns.")
    ] = None,
    label_column: Annotated[str | None, Form(max_length=255)] = None,
    format: Annotated[Literal["csv", "tsv", "jsonl"] | None, Form()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    filename = file.filename or "dataset"
    fields = {"filename": filename, "name": name, "text_columns": text_columns,
              "label_column": label_column, "format": format}  # fmt: skip
    return respond(
        session, caller, request, idempotency_key, status=201,
        body_sha256=lambda: upload_sha256(file.file, fields),
        run=lambda: DatasetOut.of(service.upload(
            session, settings, file.file, filename, name=name, fmt=format,
            text_columns=text_columns, label_column=label_column, caller=caller,
        )),
    )  # fmt: skip


@router.get("", response_model=DatasetPage, responses=problems(422))
def list_datasets(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    page_token: Annotated[str | None, Query(max_length=512)] = None,
) -> DatasetPage:
    items, token = service.list_datasets(session, settings, caller, limit, page_token)
    return DatasetPage(items=[DatasetOut.of(d) for d in items], next_page_token=token)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=problems(404))
def get_dataset(dataset_id: str, session: SessionDep, caller: CallerDep) -> DatasetOut:
    return DatasetOut.of(service.get(session, dataset_id, caller))
