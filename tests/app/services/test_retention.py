"""Issue 18: ARTIFACT_RETENTION_DAYS. On the sweeper's pass (the reaper loop, `python -m app
reap`), the artifacts of jobs that ended longer ago are marked expired and their files leave
the store; the job's listing says so and a download is a 410 artifact_expired. Recent jobs,
unfinished ones and files other rows name are kept; with the setting off nothing expires."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job
from app.services.api_keys import IssuedKey
from app.services.reaper import ReaperLoop
from app.services.sweeper import sweep_once
from app.settings import Settings
from app.storage import LocalStore
from tests.app.routes.test_jobs import problem
from tests.factories.jobs import make_artifact, make_listed_job

DAYS = 30


@pytest.fixture
def factory(db_session: Session) -> Callable[[], Session]:
    def _factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    return _factory


def retention(**over: object) -> Settings:
    """The test's settings (storage and work under tmp, from settings_env) with retention."""
    return Settings(artifact_retention_days=DAYS, sweep_grace_s=3600, **over)  # type: ignore[arg-type]


def ended(db: Session, key: IssuedKey, days_ago: float, status: str = "succeeded") -> Job:
    return make_listed_job(db, key.tenant_id, status=status,
                           finished_ago=timedelta(days=days_ago))  # fmt: skip


def local(settings: Settings) -> LocalStore:
    return LocalStore(settings.storage_dir)


def test_old_jobs_artifacts_expire_and_the_rest_stay(
    client: TestClient, db_session: Session, api_key: IssuedKey,
    factory: Callable[[], Session],
) -> None:  # fmt: skip
    old, recent = ended(db_session, api_key, 31), ended(db_session, api_key, 29)
    failed = ended(db_session, api_key, 40, "failed")
    running = make_listed_job(db_session, api_key.tenant_id, status="running")
    gone = [make_artifact(db_session, old, b"old model"),
            make_artifact(db_session, old, b"old report", kind="report"),
            make_artifact(db_session, failed, b"partial")]  # fmt: skip
    kept = [make_artifact(db_session, recent, b"recent"),
            make_artifact(db_session, running, b"in progress")]  # fmt: skip
    s = retention()
    report = sweep_once(factory, s)
    assert sorted(report.expired) == sorted(a.id for a in gone)
    assert sorted(report.expired_objects) == sorted(a.storage_key for a in gone)
    db_session.expire_all()
    for a in gone:
        assert a.expired_at is not None and not local(s).exists(a.storage_key)
    for a in kept:
        assert a.expired_at is None and local(s).exists(a.storage_key)
    again = sweep_once(factory, s)
    assert again.expired == [] and again.expired_objects == []


def test_the_listing_says_expired_and_a_download_is_410(
    client: TestClient, db_session: Session, api_key: IssuedKey,
    factory: Callable[[], Session],
) -> None:  # fmt: skip
    old, recent = ended(db_session, api_key, 31), ended(db_session, api_key, 1)
    expired = make_artifact(db_session, old, b"old")
    live = make_artifact(db_session, recent, b"new")
    sweep_once(factory, retention())
    [item] = client.get(f"/v1/jobs/{old.id}/artifacts").json()["items"]
    assert item["id"] == str(expired.id) and item["expired_at"] is not None
    [fresh] = client.get(f"/v1/jobs/{recent.id}/artifacts").json()["items"]
    assert fresh["expired_at"] is None
    body = problem(client.get(f"/v1/artifacts/{expired.id}"), 410, "artifact_expired")
    assert str(expired.id) in body["detail"]
    head = client.head(f"/v1/artifacts/{expired.id}")
    assert head.status_code == 410
    assert client.get(f"/v1/artifacts/{live.id}").content == b"new"


def test_with_retention_off_nothing_expires(
    client: TestClient, db_session: Session, api_key: IssuedKey,
    factory: Callable[[], Session],
) -> None:  # fmt: skip
    art = make_artifact(db_session, ended(db_session, api_key, 3650), b"ancient")
    s = Settings(sweep_grace_s=3600)
    assert s.artifact_retention_days is None  # the default
    assert sweep_once(factory, s).expired == []
    db_session.refresh(art)
    assert art.expired_at is None and local(s).exists(art.storage_key)


def test_a_file_a_live_row_names_stays(
    client: TestClient, db_session: Session, api_key: IssuedKey,
    factory: Callable[[], Session],
) -> None:  # fmt: skip
    """The same bytes as a recent job's artifact are one store object: it stays."""
    old = make_artifact(db_session, ended(db_session, api_key, 31), b"same")
    make_artifact(db_session, ended(db_session, api_key, 1), b"same")
    report = sweep_once(factory, retention())
    assert report.expired == [old.id] and report.expired_objects == []
    assert local(retention()).exists(old.storage_key)


def test_a_file_put_again_since_is_left_to_the_sweeper_which_removes_it_later(
    client: TestClient, db_session: Session, api_key: IssuedKey,
    factory: Callable[[], Session],
) -> None:  # fmt: skip
    """Put again after the expired row was written (an upload whose row never came): the
    retention pass leaves it; an expired row names no file, so once the sweeper's grace has
    passed the orphan goes."""
    s = retention()
    old = make_artifact(db_session, ended(db_session, api_key, 31), b"put again")
    make_artifact(db_session, ended(db_session, api_key, 1), b"someone else's")
    path = local(s).local_path(old.storage_key)
    reput = old.created_at.timestamp() + 5
    os.utime(path, (reput, reput))
    report = sweep_once(factory, s, now=utcnow())
    assert report.expired == [old.id] and report.expired_objects == []
    assert path.exists()
    later = sweep_once(factory, s, now=old.created_at + timedelta(seconds=5 + 2 * 3600))
    assert later.objects == [old.storage_key] and not path.exists()


def test_the_reaper_loop_expires_on_its_sweep(
    client: TestClient, db_session: Session, api_key: IssuedKey,
    factory: Callable[[], Session],
) -> None:  # fmt: skip
    art = make_artifact(db_session, ended(db_session, api_key, 31), b"loop")
    loop = ReaperLoop(3600, factory=factory, settings=retention(), publish=lambda _id: None)
    loop._pass()
    db_session.refresh(art)
    assert art.expired_at is not None
