"""The database readiness probe."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session


def database_answers(session: Session) -> bool:
    try:
        return bool(session.execute(text("SELECT 1")).scalar_one() == 1)
    except SQLAlchemyError:
        session.rollback()
        return False
