"""Every route that takes a query parameter refuses one it does not take (422
unknown_parameter naming it): a misspelt `?keep_partial=true` on a cancel must not be
dropped silently (the partial artifacts would be deleted), nor `?redirct=false` on a
download."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import app.routes
from app.deps import _query_names, known_query_only
from app.services.api_keys import IssuedKey
from tests.app.routes.test_jobs import problem
from tests.factories.jobs import make_artifact, make_listed_job


def routers() -> list[APIRouter]:
    """The router of every module of app.routes."""
    found = []
    for info in pkgutil.iter_modules(app.routes.__path__):
        router = getattr(importlib.import_module(f"app.routes.{info.name}"), "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


def test_every_route_with_a_query_parameter_refuses_unknown_ones() -> None:
    routes = [r for router in routers() for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 20
    lacking = [
        f"{sorted(route.methods or ())} {route.path}"
        for route in routes
        if _query_names(route.dependant)
        and not any(d.call is known_query_only for d in route.dependant.dependencies)
    ]
    assert lacking == []


def test_a_misspelt_cancel_option_is_refused_and_cancels_nothing(
    client: TestClient, db_session: Session, api_key: IssuedKey
) -> None:
    job = make_listed_job(db_session, api_key.tenant_id, status="running")
    r = client.post(f"/v1/jobs/{job.id}/cancel", params={"keep_partial": "true"})
    body = problem(r, 422, "unknown_parameter")
    assert body["field"] == "keep_partial"
    assert "keep_partial_artifacts" in body["detail"]
    db_session.refresh(job)
    assert not job.cancel_requested
    r = client.post(f"/v1/jobs/{job.id}/cancel", params={"keep_partial_artifacts": "true"})
    assert r.status_code == 202, r.text
    db_session.refresh(job)
    assert job.cancel_requested and job.keep_partial_artifacts


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_misspelt_download_option_is_refused(
    client: TestClient, db_session: Session, api_key: IssuedKey, method: str
) -> None:
    job = make_listed_job(db_session, api_key.tenant_id, status="succeeded")
    art = make_artifact(db_session, job, b"weights")
    url = f"/v1/artifacts/{art.id}"
    assert client.request(method, url, params={"redirect": "false"}).status_code == 200
    r = client.request(method, url, params={"redirct": "false"})
    assert r.status_code == 422
    if method == "GET":
        assert problem(r, 422, "unknown_parameter")["field"] == "redirct"
