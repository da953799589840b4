"""/metrics: Prometheus text format. It counts every tenant's jobs, so it needs the
metrics token (when one is set) or an admin API key, unless METRICS_PUBLIC=true
(app.services.metrics.authorize). A presented API key is checked by admission before the
request takes a slot; the API logs at startup who may read /metrics (app.main)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.admission_state import admitted_caller
from app.deps import SessionFactoryDep, SettingsDep, presented_token
from app.services.metrics import authorize, render

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, settings: SettingsDep, factory: SessionFactoryDep) -> Response:
    caller = admitted_caller(request.scope.get("state", {}))
    authorize(settings, presented_token(request.headers), caller)
    return Response(render(factory, settings), media_type=CONTENT_TYPE_LATEST)
