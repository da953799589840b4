"""The sweeper and the folders of deleted jobs: a deletion removes the job's checkpoints and
scratch on the API's host only, so on every other host (the workers') the sweeper removes a
job folder whose id has no job row once it is older than the grace period; a fresh one (a
job being made right now) stays, and so does every folder while the registry holds no job
at all (another database, misconfigured)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from alembic import command
from app.db.base import utcnow
from app.db.session import make_engine
from app.services.sweeper import SweepReport, sweep_job_folders, sweep_once
from app.settings import Settings
from tests.app.services.test_sweeper import GRACE_S, job_with_folders
from tests.conftest import alembic_config

HOURS_AGO = time.time() - 7 * 3600


@pytest.fixture
def factory(db_session: Session) -> Callable[[], Session]:
    def _factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    return _factory


def folders_of(work: Path, job_id: uuid.UUID, *, aged: bool) -> list[Path]:
    """The checkpoints and scratch a worker leaves: <work>/<id>/checkpoints/..., and
    <work>/jobs/<id>."""
    top, scratch = work / str(job_id), work / "jobs" / str(job_id)
    (top / "checkpoints" / "0001-stage-dense").mkdir(parents=True)
    (top / "checkpoints" / "0001-stage-dense" / "state.pt").write_bytes(b"w")
    scratch.mkdir(parents=True)
    (scratch / "export.onnx").write_bytes(b"o")
    if aged:
        for path in (top, scratch):
            os.utime(path, (HOURS_AGO, HOURS_AGO))
    return [top, scratch]


def test_deleted_jobs_folders_go_once_past_the_grace(
    db_session: Session, factory: Callable[[], Session], tmp_path: Path
) -> None:
    s = Settings(storage_dir=tmp_path / "store", work_dir=tmp_path / "work", sweep_grace_s=GRACE_S)
    work = s.work_dir
    kept = job_with_folders(db_session, work, "succeeded", 7)  # a row: not deleted
    for path in (work / str(kept.id), work / "jobs" / str(kept.id)):
        os.utime(path, (HOURS_AGO, HOURS_AGO))
    deleted = folders_of(work, uuid.uuid4(), aged=True)
    being_made = folders_of(work, uuid.uuid4(), aged=False)
    report = sweep_once(factory, s)
    assert sorted(report.job_folders) == sorted(deleted)
    assert not any(p.exists() for p in deleted)
    assert all(p.exists() for p in being_made)
    assert (work / str(kept.id)).exists() and (work / "jobs" / str(kept.id)).exists()


def test_with_no_job_in_the_registry_folders_are_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    work = tmp_path / "work"
    lone = folders_of(work, uuid.uuid4(), aged=True)
    cutoff = utcnow() - timedelta(seconds=GRACE_S)
    with Session(engine) as session:
        report = SweepReport()
        sweep_job_folders(session, work, cutoff, report)
    engine.dispose()
    assert report.job_folders == []
    assert all(p.exists() for p in lone)
