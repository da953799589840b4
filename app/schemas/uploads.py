"""Uploaded model and data set responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.db.models import UploadedDataset, UploadedModel


class ModelOut(BaseModel):
    id: uuid.UUID
    name: str
    filename: str
    archive_format: str
    size_bytes: int
    sha256: str
    architecture: str
    num_labels: int | None
    num_parameters: int
    config: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, m: UploadedModel) -> ModelOut:
        return cls(
            id=m.id, name=m.name, filename=m.filename, archive_format=m.archive_format,
            size_bytes=m.size_bytes, sha256=m.sha256, architecture=m.architecture,
            num_labels=m.num_labels, num_parameters=m.num_parameters, config=m.config,
            created_at=m.created_at,
        )  # fmt: skip


class ModelPage(BaseModel):
    items: list[ModelOut]
    next_page_token: str | None


class DatasetOut(BaseModel):
    id: uuid.UUID
    task: str = Field(description="The task the data set serves (a job's `task`).")
    name: str
    filename: str
    format: str = Field(description="csv, tsv, jsonl, conll or squad.")
    size_bytes: int
    sha256: str
    columns: list[str]
    text_columns: list[str]
    label_column: str
    labels: list[str] = Field(
        description="The classes, or the IOB2 tags (token_classification); [] otherwise."
    )
    num_rows: int = Field(description="Examples: rows, sentences or questions.")
    options: dict[str, Any] = Field(
        description="What the task's checks found: `tag_scheme` (token_classification: the "
        "file's IOB1 or IOB2), `score_min` and `score_max` (regression)."
    )
    created_at: datetime

    @classmethod
    def of(cls, d: UploadedDataset) -> DatasetOut:
        return cls(
            id=d.id, task=d.task, name=d.name, filename=d.filename, format=d.format,
            size_bytes=d.size_bytes, sha256=d.sha256, columns=d.columns,
            text_columns=d.text_columns, label_column=d.label_column, labels=d.labels,
            num_rows=d.num_rows, options=dict(d.options or {}), created_at=d.created_at,
        )  # fmt: skip


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    next_page_token: str | None
