"""Idempotency key queries."""

from __future__ import annotations

import uuid

from sqlalchemy import select
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
