"""Uploaded model and data set queries."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import UploadedDataset, UploadedModel
from app.pagination import Cursor
from app.repositories.keyset import page


def add_model(session: Session, model: UploadedModel) -> UploadedModel:
    session.add(model)
    session.flush()
    return model


def get_model(session: Session, model_id: uuid.UUID) -> UploadedModel | None:
    return session.get(UploadedModel, model_id)


def list_models(
    session: Session, cursor: Cursor | None, limit: int
) -> tuple[list[UploadedModel], Cursor | None]:
    return page(session, select(UploadedModel), UploadedModel, cursor, limit)


def add_dataset(session: Session, dataset: UploadedDataset) -> UploadedDataset:
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, dataset_id: uuid.UUID) -> UploadedDataset | None:
    return session.get(UploadedDataset, dataset_id)


def list_datasets(
    session: Session, cursor: Cursor | None, limit: int
) -> tuple[list[UploadedDataset], Cursor | None]:
    return page(session, select(UploadedDataset), UploadedDataset, cursor, limit)
