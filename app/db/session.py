"""Engine and sessions; one dependency commits or rolls back, then runs after-commit hooks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Any

import anyio
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from app.repositories import events
from app.settings import get_settings

AFTER_COMMIT_KEY = "scalpel_after_commit"
CONNECT_TIMEOUT_S = 10
# A pooled connection idle for longer than this is pinged before use (a busy one is not: it
# was just used, and a query that meets a dead server invalidates the whole pool anyway).
PING_AFTER_IDLE_S = 1.0


def make_engine(url: str) -> Engine:
    events.install()  # job events get their per-job number, whoever writes them
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # A database that does not answer fails the request (503) in seconds, not minutes.
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
    engine = create_engine(
        url, pool_size=10, max_overflow=20, pool_use_lifo=True, connect_args=connect_args
    )
    ping_after_idle(engine, PING_AFTER_IDLE_S)
    return engine


def ping_after_idle(engine: Engine, idle_s: float) -> None:
    """pool_pre_ping, but only for a connection that sat in the pool longer than idle_s: a
    round trip saved on every request of a busy API. A failed ping discards the connection
    and the pool checks out (or opens) another."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("checked_in_at")
        if last is None or time.monotonic() - last < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run fn once the session's work is committed (enqueue after commit)."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(fn)


def run_after_commit(session: Session) -> None:
    hooks: list[Callable[[], None]] = session.info.pop(AFTER_COMMIT_KEY, [])
    for fn in hooks:
        fn()


def finish(session: Session, *, ok: bool) -> None:
    """Commit and run the after-commit hooks (ok), or roll back; then close."""
    try:
        if ok:
            session.commit()
            run_after_commit(session)
        else:
            session.rollback()
            session.info.pop(AFTER_COMMIT_KEY, None)
    finally:
        session.close()


async def get_session() -> AsyncIterator[Session]:
    """FastAPI dependency: one session per request, committed on success, rolled back on error.

    Async so that only database work goes to the threadpool: a request whose session never
    began a transaction (a cached key, then no query) ends it here, without a thread hop.
    """
    session = get_sessionmaker()()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(finish, session, ok=False)
        raise
    if session.in_transaction() or session.info.get(AFTER_COMMIT_KEY):
        await run_in_threadpool(finish, session, ok=True)
    else:
        session.close()
