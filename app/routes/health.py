"""/healthz (the process answers) and /readyz (database and broker reachable)."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import SessionDep
from app.openapi import problems
from app.schemas.health import Health, Readiness
from app.services.health import readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Readiness, responses=problems(503))
def readyz(session: SessionDep) -> Readiness:
    return Readiness(checks=readiness(session))
