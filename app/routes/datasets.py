"""/v1/datasets: upload, list and read CSV, TSV and JSONL data sets."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile

from app.deps import SessionDep, SettingsDep
from app.openapi import problems
from app.schemas.uploads import DatasetOut, DatasetPage
from app.services import datasets as service

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=201, response_model=DatasetOut, responses=problems(413, 422))
def upload_dataset(
    file: Annotated[UploadFile, File(description="A .csv, .tsv or .jsonl file, UTF-8.")],
    session: SessionDep,
    settings: SettingsDep,
    name: Annotated[str | None, Form(max_length=255)] = None,
    text_columns: Annotated[
        str | None, Form(max_length=512, description="Comma separated; one or two columns.")
    ] = None,
    label_column: Annotated[str | None, Form(max_length=255)] = None,
    format: Annotated[Literal["csv", "tsv", "jsonl"] | None, Form()] = None,
) -> DatasetOut:
    dataset = service.upload(
        session, settings, file.file, file.filename or "dataset", name=name, fmt=format,
        text_columns=text_columns, label_column=label_column,
    )  # fmt: skip
    return DatasetOut.of(dataset)


@router.get("", response_model=DatasetPage, responses=problems(422))
def list_datasets(
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    page_token: Annotated[str | None, Query(max_length=512)] = None,
) -> DatasetPage:
    items, token = service.list_datasets(session, settings, limit, page_token)
    return DatasetPage(items=[DatasetOut.of(d) for d in items], next_page_token=token)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=problems(404))
def get_dataset(dataset_id: str, session: SessionDep) -> DatasetOut:
    return DatasetOut.of(service.get(session, dataset_id))
