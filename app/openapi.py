"""OpenAPI: declare problem responses, and publish them as application/problem+json. The API
key schemes (bearer, X-API-Key) come from the security dependencies in app.deps; every
operation that needs a key also declares its 401 problem, one with a request body its 413 and
422, one with parameters its 422 (as FastAPI does) and one with path parameters its 404.
Request examples and the webhooks come from app.openapi_docs."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.openapi_docs import add_request_examples, install_webhooks
from app.schemas.common import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
UNAUTHENTICATED = {"description": "Missing, unknown or revoked API key (problem+json)"}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the problem statuses a route may answer with."""
    return {
        s: {"model": Problem, "description": f"{HTTPStatus(s).phrase} (problem+json)"}
        for s in statuses
    }


def implied_statuses(op: dict[str, Any]) -> dict[str, str]:
    """Problem statuses an operation can answer with by its shape alone."""
    out: dict[str, str] = {}
    params = op.get("parameters", [])
    if op.get("security"):
        out["401"] = UNAUTHENTICATED["description"]
    if any(p.get("in") == "path" for p in params):
        out["404"] = "Not found (problem+json)"
    if "requestBody" in op:
        out["413"] = "Request body over the route's limit (problem+json)"
        out["400"] = "A body that cannot be parsed: bad multipart, non-UTF-8 JSON (problem+json)"
    if "requestBody" in op or params:
        out["422"] = "Unprocessable content (problem+json)"
    return out


def install_openapi(app: FastAPI) -> None:
    install_webhooks(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes,
            webhooks=app.webhooks.routes,
        )  # fmt: skip
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema())
        add_request_examples(schema)
        for hook in schema.get("webhooks", {}).values():
            for op in hook.values():
                op.get("responses", {}).pop("422", None)
        for path_item in schema.get("paths", {}).values():
            for op in path_item.values():
                responses = op.setdefault("responses", {})
                for status, description in implied_statuses(op).items():
                    responses.setdefault(status, {"description": description})
                for status, response in op.get("responses", {}).items():
                    if not status.isdigit() or int(status) < 400:
                        continue
                    if "application/json" not in response.get("content", {"application/json": 0}):
                        continue  # declared with another media type (FileResponse's text)
                    response["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}
                    if status == "422":
                        response["description"] = "Unprocessable content (problem+json)"
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
