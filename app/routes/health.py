"""/healthz (liveness: the process can serve) and /readyz (database and broker reachable;
which built-in models and data sets are installed)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.admission_state import AdmissionState
from app.deps import SessionDep, SettingsDep
from app.openapi import problems
from app.schemas.health import Health, Readiness
from app.services.builtin_files import BuiltinsProbe
from app.services.health import liveness, readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses=problems(503))
async def healthz(request: Request, settings: SettingsDep) -> Health:
    """Async and outside admission, so it answers when every slot and thread is taken; 503
    `not_live` when requests have been waiting on a stuck lane for `LIVENESS_STALL_S`."""
    state: AdmissionState = request.app.state.admission
    liveness(state, settings.liveness_stall_s)
    return Health()


@router.get("/readyz", response_model=Readiness, responses=problems(503))
def readyz(request: Request, session: SessionDep, settings: SettingsDep) -> Readiness:
    """503 `not_ready` when the database or the broker is down; `builtins` lists each
    built-in model and data set and whether this server has its files."""
    probe: BuiltinsProbe = request.app.state.builtins
    return Readiness(checks=readiness(session), builtins=probe.get(settings.data_dir))
