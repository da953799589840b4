"""Route dependencies: the request's session (committed before the response), settings, and
the caller named by the request's API key. Requests under /v1/ (and /metrics, when a key is
presented) are authenticated by admission (app.concurrency) before they take a slot, with the
helpers below: the one reading of the presented key (`presented_token`), its identity, and
the check against the database (on a session from the factory the app gives admission), or
the process's short-lived cache of keys it has checked (app.services.key_cache). The route
then takes the caller admission found."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session
from starlette.datastructures import Headers

from app.admission_state import admitted_caller
from app.db.session import get_session, get_sessionmaker
from app.errors import Unauthenticated, Unprocessable
from app.services.api_keys import authenticate, parse
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
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    _header_key: Annotated[str | None, Depends(api_key_header)],
) -> Caller:
    """The caller admission authenticated for this very request (the two security
    dependencies only describe the key in the OpenAPI document)."""
    caller = admitted_caller(request.scope.get("state", {}))
    if caller is None:  # a route taking a caller outside admission's paths: a bug, not a key
        raise Unauthenticated("an API key is required: Authorization: Bearer <key>")
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query_only(request: Request) -> None:
    """A route dependency of the list endpoints: a query parameter the route does not declare
    is a 422 naming it, not silently ignored (`?modle=x` would list every job)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _query_names(route.dependant)
    for name in request.query_params:
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "none"
            raise Unprocessable(
                f"unknown query parameter {name[:64]!r}; this endpoint takes: {takes}",
                code="unknown_parameter", field=name[:64],
            )  # fmt: skip


# dependencies=[KnownQueryOnly] on a route.
KnownQueryOnly = Depends(known_query_only)


def presented_token(headers: Headers) -> str | None:
    """The key as the `bearer` and `api_key_header` dependencies read it: `Authorization:
    Bearer <key>` (another scheme counts as none), else `X-API-Key`."""
    scheme, credentials = get_authorization_scheme_param(headers.get("authorization"))
    if scheme and credentials and scheme.lower() == "bearer":
        return credentials
    return headers.get("x-api-key") or None


def refuse_unusable(token: str | None) -> str:
    """The 401 `authenticate` would give a missing or malformed key, without a query."""
    if not token:
        raise Unauthenticated("an API key is required: Authorization: Bearer <key>")
    if parse(token.strip()) is None:
        raise Unauthenticated("the API key is not valid")
    return token


def key_identity(token: str) -> str:
    """Which key a token names, for counting what the key holds: its public prefix (only
    meaningful once the token has been authenticated)."""
    parsed = parse(token.strip())
    return parsed[0] if parsed is not None else ""


# Sessions for key checks: a context manager that ends (closes) the session.
KeySessions = Callable[[], AbstractContextManager[Session]]


def default_key_sessions() -> Session:
    """A short session of the app's engine (resolved on first use, not at import)."""
    return get_sessionmaker()()


def check_key(sessions: KeySessions, token: str) -> Caller:
    """Blocking: the key checked on a session of its own."""
    with sessions() as session:
        return authenticate(session, token)
