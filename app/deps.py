"""Route dependencies: the request's session (committed before the response), settings, and
the caller named by the request's API key (checked against the database, or taken from the
process's short-lived cache of keys it has checked: app.services.key_cache)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.db.session import get_session, get_sessionmaker
from app.services.api_keys import authenticate
from app.services.key_cache import KeyCache
from app.settings import Settings
from app.tenancy import Caller


async def app_settings(request: Request) -> Settings:
    """Async: no I/O, so no trip to the threadpool (FastAPI runs sync dependencies there)."""
    settings: Settings = request.app.state.settings
    return settings


# scope="function": commit (and the after-commit hooks) run before the response is sent.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(app_settings)]


async def session_factory() -> Callable[[], Session]:
    """For work that outlives the request's session (event streams): one short session each."""
    return get_sessionmaker()


SessionFactoryDep = Annotated[Callable[[], Session], Depends(session_factory)]

# auto_error=False: a missing or malformed key is our 401 problem, not FastAPI's 403.
bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="`Bearer sk_...`")
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="The key alone."
)


async def current_caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> Caller:
    """Async, so a cached key costs no trip to the threadpool; a miss queries on it."""
    token = credentials.credentials if credentials is not None else header_key
    cache: KeyCache = request.app.state.key_cache
    if token and (caller := cache.get(token)) is not None:
        return caller
    caller = await run_in_threadpool(authenticate, session, token)
    cache.put(token or "", caller)
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
