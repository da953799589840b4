"""Migration 0009 (job names and labels, artifact expiry) on both databases: jobs that
existed before it have no name and no labels; down again, SQLite's rebuild of `job` keeps
their events (foreign keys are switched off before the first table copy)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session

from alembic import command
from app.db.models import Job
from app.db.session import make_engine
from app.repositories import jobs as jobs_repo
from app.repositories.jobs import JobFilter
from tests.conftest import alembic_config, create_database, drop_database

JOB_ID = "0b7e5a52-3f7e-4bb4-9c55-1b2f1c1a0009"


def _existing_jobs_get_no_name_and_no_labels(url: str) -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, "0008")
    engine = create_engine(url)
    job_id = JOB_ID if url.startswith("postgresql") else JOB_ID.replace("-", "")
    with engine.begin() as conn:
        tenant = conn.execute(text("SELECT id FROM tenant WHERE name = 'default'")).scalar_one()
        conn.execute(
            text("INSERT INTO job (id, tenant_id, status, progress, spec, metrics, "
                 "cancel_requested, keep_partial_artifacts, attempts, created_at, updated_at) "
                 "VALUES (:id, :t, 'succeeded', 1, '{}', '{}', false, false, 1, '2026-01-01', "
                 "'2026-01-01')"),
            {"id": job_id, "t": tenant},
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO job_event (job_id, seq, kind, created_at) VALUES (:id, 1, "
                 "'status', '2026-01-01')"),
            {"id": job_id},
        )  # fmt: skip
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        name, labels = conn.execute(
            text("SELECT name, labels FROM job WHERE id = :id"), {"id": job_id}
        ).one()
        assert name is None
        assert labels in ({}, "{}")  # JSONB decoded; SQLite's JSON text
        assert "expired_at" in {c["name"] for c in inspect(conn).get_columns("artifact")}
    command.downgrade(cfg, "0008")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM job_event")).scalar_one() == 1
        assert "labels" not in {c["name"] for c in inspect(conn).get_columns("job")}
    engine.dispose()


def test_existing_jobs_sqlite(tmp_path: Path) -> None:
    _existing_jobs_get_no_name_and_no_labels(f"sqlite:///{tmp_path / 'm9.db'}")


def test_existing_jobs_postgres() -> None:
    name = f"scalpel_m9_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        _existing_jobs_get_no_name_and_no_labels(url)
    finally:
        drop_database(name)


MODEL_ID = uuid.UUID("5d0c1f8e-2b4a-4c7e-9f10-aa00bb11cc22")
DATASET_ID = uuid.UUID("6e1d2a9f-3c5b-4d8f-8a21-bb11cc22dd33")
# (spec.model, spec.dataset.name) as jobs stored before 0009 may hold them, and as after it.
SPELLINGS = [
    ((str(MODEL_ID).upper(), DATASET_ID.hex), (str(MODEL_ID), str(DATASET_ID))),
    (("{" + str(MODEL_ID) + "}", f"urn:uuid:{DATASET_ID}"), (str(MODEL_ID), str(DATASET_ID))),
    ((str(MODEL_ID), "sst2"), (str(MODEL_ID), "sst2")),
    (("minilm-l6", "0123456789abcdef0123456789abcdefXYZ"),
     ("minilm-l6", "0123456789abcdef0123456789abcdefXYZ")),
]  # fmt: skip


def _uploaded_ids_become_canonical(url: str) -> None:
    """Migration 0009: a job that named an uploaded model or data set by another spelling of
    its id holds the canonical one after it, so the in-use check and the filters (which
    compare the stored text) find it; anything else is left as it was."""
    cfg = alembic_config(url)
    command.upgrade(cfg, "0008")
    engine = make_engine(url)
    with engine.begin() as conn:
        tenant = conn.execute(text("SELECT id FROM tenant WHERE name = 'default'")).scalar_one()
        for i, ((model, dataset), _) in enumerate(SPELLINGS):
            spec = {"model": model, "dataset": {"name": dataset, "max_length": 64}}
            job_id = uuid.UUID(int=i + 1)
            conn.execute(
                text("INSERT INTO job (id, tenant_id, status, progress, spec, metrics, "
                     "cancel_requested, keep_partial_artifacts, attempts, created_at, "
                     "updated_at) VALUES (:id, :t, 'queued', 0, :spec, '{}', false, false, 0, "
                     ":at, :at)"),
                {"id": str(job_id) if url.startswith("postgresql") else job_id.hex, "t": tenant,
                 "spec": json.dumps(spec), "at": f"2026-01-01 00:00:0{i}"},
            )  # fmt: skip
    command.upgrade(cfg, "head")
    with Session(engine) as session:
        for i, (_, (model, dataset)) in enumerate(SPELLINGS):
            job = session.get(Job, uuid.UUID(int=i + 1))
            assert job is not None
            assert (job.spec["model"], job.spec["dataset"]["name"]) == (model, dataset)
            assert job.spec["dataset"]["max_length"] == 64
        users = jobs_repo.active_using(session, model=str(MODEL_ID))
        assert [j.id.int for j in users] == [1, 2, 3]
        assert [j.id.int for j in jobs_repo.active_using(session, dataset=str(DATASET_ID))] == [
            1, 2
        ]  # fmt: skip
        where = JobFilter(model=str(MODEL_ID))
        listed, _ = jobs_repo.list_page(session, tenant_id=None, cursor=None, limit=10, where=where)
        assert sorted(j.id.int for j in listed) == [1, 2, 3]
    command.downgrade(cfg, "0008")
    engine.dispose()


def test_uploaded_ids_become_canonical_sqlite(tmp_path: Path) -> None:
    _uploaded_ids_become_canonical(f"sqlite:///{tmp_path / 'm9ids.db'}")


def test_uploaded_ids_become_canonical_postgres() -> None:
    name = f"scalpel_m9ids_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        _uploaded_ids_become_canonical(url)
    finally:
        drop_database(name)
