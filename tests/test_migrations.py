"""Alembic is the only way the schema is made: it upgrades and downgrades on both databases,
and the migrated schema matches the models."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from alembic import command
from app.db.base import Base
from tests.conftest import alembic_config, create_database, drop_database

TABLES = {
    "job", "job_event", "artifact", "model", "dataset", "tenant", "api_key", "idempotency_key",
    "webhook_secret", "webhook_delivery", "webhook_attempt", "job_event_seq",
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


def _events_are_numbered_per_job(url: str) -> None:
    """0007 numbers the events that exist, per job in id order, and sets each job's counter,
    so the next event a job gets continues its own sequence (one with none starts at 1);
    and back down again."""
    from sqlalchemy.orm import Session

    from app.db.models import JobEvent
    from app.repositories import events  # noqa: F401  (numbers the events added below)

    cfg = alembic_config(url)
    command.upgrade(cfg, "0006")
    engine = create_engine(url)
    pg = url.startswith("postgresql")
    a, b, c = (f"0b7e5a52-3f7e-4bb4-9c55-1b2f1c1a000{i}" for i in (1, 2, 3))
    ids = {j: (j if pg else j.replace("-", "")) for j in (a, b, c)}
    tenant = "0b7e5a52-3f7e-4bb4-9c55-1b2f1c1a00ff"
    tenant = tenant if pg else tenant.replace("-", "")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tenant (id, name, created_at) VALUES (:id, 't', '2026-01-01')"),
            {"id": tenant},
        )
        for job in (a, b, c):
            conn.execute(
                text(
                    "INSERT INTO job (id, tenant_id, status, progress, spec, metrics, "
                    "cancel_requested, attempts, created_at, updated_at) VALUES (:id, :t, "
                    "'queued', 0, '{}', '{}', false, 0, '2026-01-01', '2026-01-01')"
                ),
                {"id": ids[job], "t": tenant},
            )
        for job in (a, b, a, a, b):  # interleaved: global ids 1..5; c has none
            conn.execute(
                text("INSERT INTO job_event (job_id, kind, created_at) VALUES (:id, 'status', "
                     "'2026-01-01')"), {"id": ids[job]},
            )  # fmt: skip
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT job_id, seq FROM job_event ORDER BY id")).all()
        assert [r[1] for r in rows] == [1, 1, 2, 3, 2]
        counters = dict(conn.execute(text("SELECT job_id, last_seq FROM job_event_seq")).all())
        assert sorted(counters.values()) == [2, 3]  # c has no events and no counter yet
    with Session(engine) as session:
        session.add_all([JobEvent(job_id=uuid.UUID(j), kind="status") for j in (a, c, c)])
        session.flush()
        seqs = session.execute(text("SELECT job_id, seq FROM job_event WHERE id > 5 ORDER BY id"))
        assert [r[1] for r in seqs] == [4, 1, 2]  # a goes on; c starts at 1, twice in one flush
        session.rollback()
    command.downgrade(cfg, "0006")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM job_event")).scalar_one() == 5
        assert "seq" not in {c["name"] for c in inspect(conn).get_columns("job_event")}
    engine.dispose()


def test_events_are_numbered_per_job_sqlite(tmp_path: Path) -> None:
    _events_are_numbered_per_job(f"sqlite:///{tmp_path / 'e.db'}")


def test_events_are_numbered_per_job_postgres() -> None:
    name = "scalpel_migrations_seq_check"
    url = create_database(name)
    try:
        _events_are_numbered_per_job(url)
    finally:
        drop_database(name)


def _datasets_serve_a_task(url: str) -> None:
    """0008 gives every existing upload the task it was checked for, sequence_classification,
    and empty options; a new row takes the same defaults; and back down again."""
    cfg = alembic_config(url)
    command.upgrade(cfg, "0007")
    engine = create_engine(url)
    pg = url.startswith("postgresql")
    ids = ("0b7e5a52-3f7e-4bb4-9c55-1b2f1c1a00ff", "0b7e5a52-3f7e-4bb4-9c55-1b2f1c1a0d01")
    tenant, dataset = (u if pg else u.replace("-", "") for u in ids)
    insert = text(
        "INSERT INTO dataset (id, tenant_id, name, filename, format, size_bytes, sha256, "
        "storage_key, columns, text_columns, label_column, labels, num_rows, created_at) "
        "VALUES (:id, :t, 'd', 'd.csv', 'csv', 1, 'x', 'k', '[\"text\", \"label\"]', "
        "'[\"text\"]', 'label', '[\"0\", \"1\"]', 8, '2026-01-01')"
    )
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tenant (id, name, created_at) VALUES (:id, 't', '2026-01-01')"),
            {"id": tenant},
        )
        conn.execute(insert, {"id": dataset, "t": tenant})
    command.upgrade(cfg, "head")
    with engine.begin() as conn:
        row = conn.execute(text("SELECT task, options FROM dataset")).one()
        options = row[1] if pg else json.loads(row[1])
        assert (row[0], options) == ("sequence_classification", {})
        conn.execute(insert, {"id": dataset[:-1] + "2", "t": tenant})  # without the new columns
        tasks = conn.execute(text("SELECT DISTINCT task FROM dataset")).scalars().all()
        assert tasks == ["sequence_classification"]
    command.downgrade(cfg, "0007")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dataset")).scalar_one() == 2
        columns = {c["name"] for c in inspect(conn).get_columns("dataset")}
        assert not {"task", "options"} & columns
    engine.dispose()


def test_datasets_serve_a_task_sqlite(tmp_path: Path) -> None:
    _datasets_serve_a_task(f"sqlite:///{tmp_path / 't.db'}")


def test_datasets_serve_a_task_postgres() -> None:
    name = "scalpel_migrations_task_check"
    url = create_database(name)
    try:
        _datasets_serve_a_task(url)
    finally:
        drop_database(name)
