"""/v1/datasets: upload, list and read data sets, each for one task: CSV, TSV and JSONL
tables (sequence classification, regression), CoNLL and tagged JSONL (token classification),
SQuAD JSON and JSONL (question answering)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

from app.catalog import DEFAULT_TASK, TaskName
from app.deps import CallerDep, KnownQueryOnly, SessionDep, SettingsDep
from app.idempotency import IdempotencyKeyHeader, respond
from app.openapi import problems
from app.routes.params import DatasetId, Limit, PageToken
from app.schemas.uploads import DatasetOut, DatasetPage
from app.services import datasets as service
from app.services import deletion
from app.services.idempotency import upload_sha256
from app.services.task_uploads import SchemeField

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=201, response_model=DatasetOut, responses=problems(409, 413, 422))
def upload_dataset(
    file: Annotated[
        UploadFile,
        File(
            description="UTF-8. A .csv, .tsv or .jsonl table (sequence_classification, "
            "regression); a .conll/.txt CoNLL file or tagged .jsonl (token_classification); "
            "a SQuAD .json or .jsonl file (question_answering).",
            examples=["sst2-train.csv"],
        ),
    ],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    task: Annotated[
        TaskName,
        Form(description="The task the data set serves.", examples=["sequence_classification"]),
    ] = DEFAULT_TASK,
    name: Annotated[
        str | None,
        Form(
            max_length=255,
            description="The data set's name (default: the file name, less its extension).",
            examples=["sst2-train"],
        ),
    ] = None,
    text_columns: Annotated[
        str | None,
        Form(
            max_length=512,
            description="Comma separated; one or two columns.",
            examples=["sentence", "sentence1,sentence2"],
        ),
    ] = None,
    label_column: Annotated[
        str | None,
        Form(
            max_length=255,
            description="The label column; regression: the score column "
            "(default `score`, else `label`).",
            examples=["label"],
        ),
    ] = None,
    tag_column: Annotated[
        str | None,
        Form(
            max_length=255,
            description="token_classification: the JSONL tags field "
            "(`tags`) or the CoNLL tag column's 1-based number (the last).",
            examples=["tags", "4"],
        ),
    ] = None,
    tag_scheme: Annotated[
        SchemeField | None,
        Form(
            description="token_classification: IOB1, IOB2 or auto (detected; the default).",
            examples=["IOB2"],
        ),
    ] = None,
    format: Annotated[
        Literal["csv", "tsv", "jsonl", "conll", "squad"] | None,
        Form(
            description="The file's format, one of its task's (default: its file name's suffix).",
            examples=["csv"],
        ),
    ] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    filename = file.filename or "dataset"
    fields = {"filename": filename, "name": name, "text_columns": text_columns,
              "label_column": label_column, "format": format}  # fmt: skip
    # Fields added since keys were first stored count only when given, so that a request
    # without them keeps the fingerprint it always had.
    added = {"task": task if task != DEFAULT_TASK else None, "tag_column": tag_column,
             "tag_scheme": tag_scheme}  # fmt: skip
    fields.update({k: v for k, v in added.items() if v is not None})
    return respond(
        session, caller, request, idempotency_key, status=201,
        body_sha256=lambda: upload_sha256(file.file, fields),
        run=lambda: DatasetOut.of(service.upload(
            session, settings, file.file, filename, name=name, fmt=format,
            text_columns=text_columns, label_column=label_column, caller=caller, task=task,
            tag_column=tag_column, tag_scheme=tag_scheme,
        )),
    )  # fmt: skip


@router.get("", response_model=DatasetPage, responses=problems(422), dependencies=[KnownQueryOnly])
def list_datasets(
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
    limit: Limit = None,
    page_token: PageToken = None,
) -> DatasetPage:
    items, token = service.list_datasets(session, settings, caller, limit, page_token)
    return DatasetPage(items=[DatasetOut.of(d) for d in items], next_page_token=token)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=problems(404))
def get_dataset(dataset_id: DatasetId, session: SessionDep, caller: CallerDep) -> DatasetOut:
    return DatasetOut.of(service.get(session, dataset_id, caller))


@router.delete("/{dataset_id}", status_code=204, responses=problems(404, 409))
def delete_dataset(
    dataset_id: DatasetId, session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    """The data set and its file. While a queued or running job uses it: a 409
    `dataset_in_use` naming the job. Finished jobs that used it keep their records."""
    deletion.delete_dataset(session, settings, dataset_id, caller)
    return Response(status_code=204)
