"""Idempotency key queries."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db.models import IdempotencyKey


def get(session: Session, tenant_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    stmt = select(IdempotencyKey).where(
        IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key
    )
    return session.scalars(stmt).one_or_none()


def add(session: Session, record: IdempotencyKey) -> IdempotencyKey:
    """Raises IntegrityError when (tenant_id, key) is taken."""
    session.add(record)
    session.flush()
    return record


def forget_resource(session: Session, tenant_id: uuid.UUID, resource_id: uuid.UUID) -> None:
    """Remove the tenant's records whose stored response is the resource's (its body's `id`:
    a job, model or data set created by a keyed POST), so that a retry of that POST after
    the resource's deletion makes it anew rather than replaying a dead id."""
    session.execute(
        delete(IdempotencyKey)
        .where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.response_body["id"].as_string() == str(resource_id),
        )
        .execution_options(synchronize_session=False)
    )
