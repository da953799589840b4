"""OpenAPI: declare problem responses, and publish them as application/problem+json. The API
key schemes (bearer, X-API-Key) come from the security dependencies in app.deps; every
operation that needs a key also declares its 401 problem."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.schemas.common import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
UNAUTHENTICATED = {"description": "Missing, unknown or revoked API key (problem+json)"}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the problem statuses a route may answer with."""
    return {
        s: {"model": Problem, "description": f"{HTTPStatus(s).phrase} (problem+json)"}
        for s in statuses
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema())
        for path_item in schema.get("paths", {}).values():
            for op in path_item.values():
                if op.get("security"):
                    op.setdefault("responses", {}).setdefault("401", UNAUTHENTICATED)
                for status, response in op.get("responses", {}).items():
                    if not status.isdigit() or int(status) < 400:
                        continue
                    response["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}
                    if status == "422":
                        response["description"] = "Unprocessable content (problem+json)"
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
