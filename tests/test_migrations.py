"""Alembic is the only way the schema is made: it upgrades and downgrades on both databases,
and the migrated schema matches the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from alembic import command
from app.db.base import Base
from tests.conftest import alembic_config, create_database, drop_database

TABLES = {
    "job", "job_event", "artifact", "model", "dataset", "tenant", "api_key", "idempotency_key",
    "webhook_secret", "webhook_delivery", "webhook_attempt",
}  # fmt: skip
JOB_ID = "0b7e5a52-3f7e-4bb4-9c55-1b2f1c1a0001"


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


def _existing_rows_join_the_default_tenant(url: str) -> None:
    """A 0001 database with a job and its event: 0002 gives the job to "default" and keeps
    the event (SQLite rebuilds `job`, which must not cascade), and back down again."""
    cfg = alembic_config(url)
    command.upgrade(cfg, "0001")
    engine = create_engine(url)
    job_id = JOB_ID if url.startswith("postgresql") else JOB_ID.replace("-", "")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO job (id, status, progress, spec, metrics, cancel_requested, "
                "attempts, created_at, updated_at) VALUES (:id, 'queued', 0, '{}', '{}', "
                "false, 0, '2026-01-01', '2026-01-01')"
            ),
            {"id": job_id},
        )
        conn.execute(
            text("INSERT INTO job_event (job_id, kind, created_at) VALUES (:id, 'status', "
                 "'2026-01-01')"),
            {"id": job_id},
        )  # fmt: skip
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        owner = conn.execute(
            text("SELECT t.name FROM job j JOIN tenant t ON t.id = j.tenant_id")
        ).scalar_one()
        assert owner == "default"
        assert conn.execute(text("SELECT count(*) FROM job_event")).scalar_one() == 1
        checks = {c["name"] for c in inspect(conn).get_check_constraints("job")}
        assert {"ck_job_status", "ck_job_progress"} <= checks
    command.downgrade(cfg, "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM job_event")).scalar_one() == 1
        assert "tenant_id" not in {c["name"] for c in inspect(conn).get_columns("job")}
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


def test_existing_rows_get_the_default_tenant_sqlite(tmp_path: Path) -> None:
    _existing_rows_join_the_default_tenant(f"sqlite:///{tmp_path / 'd.db'}")


def test_existing_rows_get_the_default_tenant_postgres() -> None:
    name = "scalpel_migrations_data_check"
    url = create_database(name)
    try:
        _existing_rows_join_the_default_tenant(url)
    finally:
        drop_database(name)
