"""API fixtures: the FastAPI app on the real PostgreSQL (one rolled-back transaction per
test) with isolated storage, work, broker and data folders, and clients that send an API key
for a tenant made in the test's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Artifact, Job, JobEvent, UploadedDataset, UploadedModel
from app.db.session import AFTER_COMMIT_KEY, get_session, run_after_commit
from app.main import create_app
from app.services.api_keys import IssuedKey
from app.settings import Settings
from tests.conftest import _clear_caches
from tests.factories.tenants import auth, make_api_key

MakeClient = Callable[..., TestClient]


def session_override(session: Session) -> Callable[[], Iterator[Session]]:
    """Behaves like app.db.session.get_session, on the test's session."""

    def _override() -> Iterator[Session]:
        try:
            yield session
            session.commit()
            run_after_commit(session)
        except BaseException:
            session.rollback()
            session.info.pop(AFTER_COMMIT_KEY, None)
            raise

    return _override


@pytest.fixture
def api_key(db_session: Session) -> IssuedKey:
    """The key the clients send unless told otherwise: tenant "tenant-a"."""
    return make_api_key(db_session, "tenant-a")


@pytest.fixture
def make_client(
    settings_env: Path, db_session: Session, monkeypatch: pytest.MonkeyPatch, api_key: IssuedKey
) -> Iterator[MakeClient]:
    """make_client(key=..., **env): a TestClient on an app built with these extra settings
    that sends `key` (default: the api_key fixture's; None: no key)."""
    data_dir = settings_env / "data"
    (data_dir / "sst2").mkdir(parents=True)
    (data_dir / "sst2" / "train.tsv").write_text("sentence\tlabel\ngood\t1\n")
    for name in ("REDIS_URL", "BROKER_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    clients: list[TestClient] = []

    def _make(*, key: IssuedKey | None = api_key, **env: str) -> TestClient:
        for name, value in env.items():
            monkeypatch.setenv(name.upper(), value)
        _clear_caches()
        # Routes and admission's key checks alike use the test's session.
        app: FastAPI = create_app(Settings(), key_sessions=lambda: nullcontext(db_session))
        app.dependency_overrides[get_session] = session_override(db_session)
        headers = auth(key) if key is not None else None
        client = TestClient(app, raise_server_exceptions=True, headers=headers)
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close()
    _clear_caches()


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def count_rows(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Job, JobEvent, Artifact, UploadedModel, UploadedDataset)
    }


def stored_objects(storage_dir: Path) -> list[Path]:
    root = storage_dir / "sha256"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
