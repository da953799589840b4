"""Render every error as RFC 9457 problem+json with a stable `code`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import ApiError, DatabaseUnavailable
from app.schemas.common import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("scalpel.api")

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        code=code,
        field=field,
        errors=errors,
    )
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def field_path(loc: Sequence[int | str], body: Any) -> str | None:
    """('body', 'pruning', 'schedule', 'gradual', 'epochs') -> 'pruning.schedule.epochs'.

    The first element names where the value came from (body, query, path); a segment that is
    not a key of the submitted object but one of its values is a union tag and is dropped.
    """
    if not loc:
        return None
    source, rest = loc[0], list(loc[1:])
    node: Any = body if source == "body" else None
    parts: list[str] = []
    for seg in rest:
        if isinstance(seg, int):
            if parts:
                parts[-1] += f"[{seg}]"
            node = node[seg] if isinstance(node, list) and 0 <= seg < len(node) else None
            continue
        if isinstance(node, dict) and seg not in node and seg in node.values():
            continue  # discriminator tag
        parts.append(seg)
        node = node.get(seg) if isinstance(node, dict) else None
    if not parts:
        return None if source == "body" else str(source)
    return ".".join(parts)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        field=exc.field,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    body = exc.body
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        errors.append(
            {"loc": loc, "field": field_path(loc, body), "msg": err.get("msg", ""),
             "type": err.get("type", "")}
        )  # fmt: skip
    fields = [e["field"] for e in errors if e["field"]]
    detail = "; ".join(f"{e['field'] or 'body'}: {e['msg']}" for e in errors)
    return problem_response(
        request,
        status=422,
        code="validation_error",
        title="Request validation failed",
        detail=detail,
        field=fields[0] if len(set(fields)) == 1 else None,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, f"http_{status}")
    detail = exc.detail if isinstance(exc.detail, str) else None
    if status == 404 and detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}"
    return problem_response(
        request, status=status, code=code, detail=detail, headers=dict(exc.headers or {})
    )


def database_down(exc: Exception) -> bool:
    """The database cannot be reached (refused, dropped, pool exhausted), as opposed to a
    statement it rejected."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and (
        isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
        or exc.connection_invalidated
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """503 database_unavailable (the request's transaction is rolled back, so nothing of it
    is kept); any other database error goes on to the 500 handler."""
    if not database_down(exc):
        raise exc
    log.warning(
        "database unavailable on %s %s: %s", request.method, request.url.path,
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
    )  # fmt: skip
    return await _api_error(
        request,
        DatabaseUnavailable(
            "the database cannot be reached; nothing was changed, retry later",
            headers={"Retry-After": "5"},
        ),
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, status=500, code="internal_error", detail="internal error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(Exception, _unhandled)
