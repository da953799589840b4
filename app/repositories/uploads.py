"""Uploaded model and data set queries; tenant_id None reads every tenant's (admin).

Row locks (`lock`): a submission takes its model's and data set's rows FOR SHARE until it
commits, a deletion takes the row FOR UPDATE before it looks for jobs that use it. So a
deletion either waits for a submission in flight and then sees its job, or goes first, and
the submission then finds no model (404): never a queued job naming a deleted upload."""

from __future__ import annotations

import uuid
from typing import Literal, TypeVar

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from app.db.models import UploadedDataset, UploadedModel
from app.pagination import Cursor
from app.repositories.keyset import page

Lock = Literal["share", "update"] | None
T = TypeVar("T")


def _locked(stmt: Select[T], lock: Lock) -> Select[T]:
    if lock is None:
        return stmt
    return stmt.with_for_update(read=lock == "share")


def add_model(session: Session, model: UploadedModel) -> UploadedModel:
    session.add(model)
    session.flush()
    return model


def get_model(
    session: Session, model_id: uuid.UUID, *, tenant_id: uuid.UUID | None, lock: Lock = None
) -> UploadedModel | None:
    stmt = select(UploadedModel).where(UploadedModel.id == model_id)
    if tenant_id is not None:
        stmt = stmt.where(UploadedModel.tenant_id == tenant_id)
    return session.scalars(_locked(stmt, lock)).one_or_none()


def delete_model(session: Session, model_id: uuid.UUID) -> None:
    session.execute(delete(UploadedModel).where(UploadedModel.id == model_id))


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
    session: Session, dataset_id: uuid.UUID, *, tenant_id: uuid.UUID | None, lock: Lock = None
) -> UploadedDataset | None:
    stmt = select(UploadedDataset).where(UploadedDataset.id == dataset_id)
    if tenant_id is not None:
        stmt = stmt.where(UploadedDataset.tenant_id == tenant_id)
    return session.scalars(_locked(stmt, lock)).one_or_none()


def delete_dataset(session: Session, dataset_id: uuid.UUID) -> None:
    session.execute(delete(UploadedDataset).where(UploadedDataset.id == dataset_id))


def list_datasets(
    session: Session, cursor: Cursor | None, limit: int, *, tenant_id: uuid.UUID | None
) -> tuple[list[UploadedDataset], Cursor | None]:
    stmt = select(UploadedDataset)
    if tenant_id is not None:
        stmt = stmt.where(UploadedDataset.tenant_id == tenant_id)
    return page(session, stmt, UploadedDataset, cursor, limit)
