"""Alembic is the only way the schema is made: it upgrades and downgrades on both databases,
and the migrated schema matches the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from alembic import command
from app.db.base import Base
from tests.conftest import alembic_config, create_database, drop_database

TABLES = {"job", "job_event", "artifact", "model", "dataset"}


def _roundtrip(url: str) -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
    command.downgrade(cfg, "base")
    with engine.connect() as conn:
        assert not TABLES & set(inspect(conn).get_table_names())
    command.upgrade(cfg, "head")
    engine.dispose()


def test_migrations_roundtrip_sqlite(tmp_path: Path) -> None:
    _roundtrip(f"sqlite:///{tmp_path / 'm.db'}")


def test_migrations_roundtrip_postgres() -> None:
    name = "scalpel_migrations_check"
    url = create_database(name)
    try:
        _roundtrip(url)
    finally:
        drop_database(name)
