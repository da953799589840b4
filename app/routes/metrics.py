"""/metrics: Prometheus text format; `Authorization: Bearer <metrics_token>` when one is set."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.deps import SessionFactoryDep, SettingsDep
from app.errors import Unauthenticated
from app.services.metrics import render

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, settings: SettingsDep, factory: SessionFactoryDep) -> Response:
    if settings.metrics_token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), settings.metrics_token.encode()):
            raise Unauthenticated("a valid metrics token is required")
    return Response(render(factory, settings), media_type=CONTENT_TYPE_LATEST)
