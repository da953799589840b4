"""Keyset pagination over (created_at, id), newest first, for any table that has both."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from app.pagination import Cursor

T = TypeVar("T")


def page(
    session: Session, stmt: Select[T], entity: Any, cursor: Cursor | None, limit: int
) -> tuple[list[T], Cursor | None]:
    """One page and the cursor of the next one (None on the last page)."""
    if cursor is not None:
        stmt = stmt.where(
            tuple_(entity.created_at, entity.id) < tuple_(cursor.created_at, cursor.id)
        )
    stmt = stmt.order_by(entity.created_at.desc(), entity.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    if len(rows) <= limit:
        return rows, None
    last: Any = rows[limit - 1]
    return rows[:limit], Cursor(created_at=last.created_at, id=last.id)
