"""Migration 0010 (job.webhook_events) on both databases: a job that existed before it sends
the terminal events, as before; down again, SQLite's rebuild of `job` keeps its events."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from alembic import command
from tests.conftest import alembic_config, create_database, drop_database

JOB_ID = "0b7e5a52-3f7e-4bb4-9c55-1b2f1c1a0010"


def _existing_jobs_send_the_terminal_events(url: str) -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, "0009")
    engine = create_engine(url)
    job_id = JOB_ID if url.startswith("postgresql") else JOB_ID.replace("-", "")
    with engine.begin() as conn:
        tenant = conn.execute(text("SELECT id FROM tenant WHERE name = 'default'")).scalar_one()
        conn.execute(
            text("INSERT INTO job (id, tenant_id, status, progress, spec, metrics, "
                 "cancel_requested, keep_partial_artifacts, attempts, labels, created_at, "
                 "updated_at, webhook_url) VALUES (:id, :t, 'queued', 0, '{}', '{}', false, "
                 "false, 0, '{}', '2026-01-01', '2026-01-01', 'https://example.com/h')"),
            {"id": job_id, "t": tenant},
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO job_event (job_id, seq, kind, created_at) VALUES (:id, 1, "
                 "'status', '2026-01-01')"),
            {"id": job_id},
        )  # fmt: skip
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        events = conn.execute(text("SELECT webhook_events FROM job")).scalar_one()
        if isinstance(events, str):  # SQLite's JSON text
            events = json.loads(events)
        assert events == ["job.succeeded", "job.failed", "job.canceled"]
    command.downgrade(cfg, "0009")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM job_event")).scalar_one() == 1
        assert "webhook_events" not in {c["name"] for c in inspect(conn).get_columns("job")}
    engine.dispose()


def test_existing_jobs_sqlite(tmp_path: Path) -> None:
    _existing_jobs_send_the_terminal_events(f"sqlite:///{tmp_path / 'm10.db'}")


def test_existing_jobs_postgres() -> None:
    name = f"scalpel_m10_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        _existing_jobs_send_the_terminal_events(url)
    finally:
        drop_database(name)
