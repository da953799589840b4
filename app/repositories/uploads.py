"""Uploaded model and data set queries; tenant_id None reads every tenant's (admin)."""

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


def get_model(
    session: Session, model_id: uuid.UUID, *, tenant_id: uuid.UUID | None
) -> UploadedModel | None:
    stmt = select(UploadedModel).where(UploadedModel.id == model_id)
    if tenant_id is not None:
        stmt = stmt.where(UploadedModel.tenant_id == tenant_id)
    return session.scalars(stmt).one_or_none()


def list_models(
    session: Session, cursor: Cursor | None, limit: int, *, tenant_id: uuid.UUID | None
) -> tuple[list[UploadedModel], Cursor | None]:
    stmt = select(UploadedModel)
    if tenant_id is not None:
        stmt = stmt.where(UploadedModel.tenant_id == tenant_id)
    return page(session, stmt, UploadedModel, cursor, limit)


def add_dataset(session: Session, dataset: UploadedDataset) -> UploadedDataset:
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(
    session: Session, dataset_id: uuid.UUID, *, tenant_id: uuid.UUID | None
) -> UploadedDataset | None:
    stmt = select(UploadedDataset).where(UploadedDataset.id == dataset_id)
    if tenant_id is not None:
        stmt = stmt.where(UploadedDataset.tenant_id == tenant_id)
    return session.scalars(stmt).one_or_none()


def list_datasets(
    session: Session, cursor: Cursor | None, limit: int, *, tenant_id: uuid.UUID | None
) -> tuple[list[UploadedDataset], Cursor | None]:
    stmt = select(UploadedDataset)
    if tenant_id is not None:
        stmt = stmt.where(UploadedDataset.tenant_id == tenant_id)
    return page(session, stmt, UploadedDataset, cursor, limit)
