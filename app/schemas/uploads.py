"""Uploaded model and data set responses."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from app.db.models import UploadedDataset, UploadedModel
from app.schemas.common import UtcDateTime

SHA256_EXAMPLE = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
NEXT_PAGE_TOKEN = "The next page's page_token; null on the last page."


class ModelOut(BaseModel):
    id: uuid.UUID = Field(
        description="The model's id: a job spec's `model`.",
        examples=["3c2f6a1e-7b4d-4e8a-9c1f-5d6e7f8a9b0c"],
    )
    name: str = Field(
        description="The name given at upload (default: the file name without its extension).",
        examples=["bert-base-sst2"],
    )
    filename: str = Field(description="The uploaded file's name.", examples=["bert-base-sst2.zip"])
    archive_format: str = Field(description="zip or tar.gz.", examples=["zip"])
    size_bytes: int = Field(description="The archive's size, in bytes.", examples=[417730519])
    sha256: str = Field(
        description="The archive's SHA-256, lowercase hex.", examples=[SHA256_EXAMPLE]
    )
    architecture: str = Field(
        description="config.json's first `architectures` entry (else its model_type).",
        examples=["BertForSequenceClassification"],
    )
    num_labels: int | None = Field(
        description="The head's labels from config.json (id2label, else num_labels); null if "
        "it says none.",
        examples=[2],
    )
    num_parameters: int = Field(
        description="The base model's parameters, counted from the weights.", examples=[109482240]
    )
    config: dict[str, Any] = Field(
        description="The model's config.json, as uploaded.",
        examples=[{"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12}],
    )
    created_at: UtcDateTime = Field(
        description="When it was uploaded.", examples=["2026-01-02T03:04:05.678Z"]
    )

    @classmethod
    def of(cls, m: UploadedModel) -> ModelOut:
        return cls(
            id=m.id, name=m.name, filename=m.filename, archive_format=m.archive_format,
            size_bytes=m.size_bytes, sha256=m.sha256, architecture=m.architecture,
            num_labels=m.num_labels, num_parameters=m.num_parameters, config=m.config,
            created_at=m.created_at,
        )  # fmt: skip


class ModelPage(BaseModel):
    items: list[ModelOut] = Field(description="The tenant's models, newest first.")
    next_page_token: str | None = Field(description=NEXT_PAGE_TOKEN, examples=[None])


class DatasetOut(BaseModel):
    id: uuid.UUID = Field(
        description="The data set's id: a job spec's `dataset.name`.",
        examples=["7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],
    )
    task: str = Field(
        description="The task the data set serves (a job's `task`).",
        examples=["sequence_classification"],
    )
    name: str = Field(
        description="The name given at upload (default: the file name without its extension).",
        examples=["reviews"],
    )
    filename: str = Field(description="The uploaded file's name.", examples=["reviews.csv"])
    format: str = Field(description="csv, tsv, jsonl, conll or squad.", examples=["csv"])
    size_bytes: int = Field(description="The file's size, in bytes.", examples=[1843200])
    sha256: str = Field(description="The file's SHA-256, lowercase hex.", examples=[SHA256_EXAMPLE])
    columns: list[str] = Field(
        description="The file's columns (JSONL: the first record's keys).",
        examples=[["text", "label", "source"]],
    )
    text_columns: list[str] = Field(
        description="The text columns jobs read: one, or two for pairs.", examples=[["text"]]
    )
    label_column: str = Field(
        description="The column of the labels (regression: the scores; token_classification: "
        "the tags).",
        examples=["label"],
    )
    labels: list[str] = Field(
        description="The classes, or the IOB2 tags (token_classification); [] otherwise.",
        examples=[["negative", "positive"]],
    )
    num_rows: int = Field(description="Examples: rows, sentences or questions.", examples=[12000])
    options: dict[str, Any] = Field(
        description="What the task's checks found: `tag_scheme` (token_classification: the "
        "file's IOB1 or IOB2), `score_min` and `score_max` (regression).",
        examples=[{}, {"score_min": 0.0, "score_max": 5.0}],
    )
    created_at: UtcDateTime = Field(
        description="When it was uploaded.", examples=["2026-01-02T03:04:05.678Z"]
    )

    @classmethod
    def of(cls, d: UploadedDataset) -> DatasetOut:
        return cls(
            id=d.id, task=d.task, name=d.name, filename=d.filename, format=d.format,
            size_bytes=d.size_bytes, sha256=d.sha256, columns=d.columns,
            text_columns=d.text_columns, label_column=d.label_column, labels=d.labels,
            num_rows=d.num_rows, options=dict(d.options or {}), created_at=d.created_at,
        )  # fmt: skip


class DatasetPage(BaseModel):
    items: list[DatasetOut] = Field(description="The tenant's data sets, newest first.")
    next_page_token: str | None = Field(description=NEXT_PAGE_TOKEN, examples=[None])
