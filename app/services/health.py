"""Liveness (admission is moving) and readiness (the database answers, the broker is
reachable)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.admission_state import AdmissionState
from app.errors import ServiceUnavailable
from app.queue import broker_reachable
from app.repositories.health import database_answers


def liveness(state: AdmissionState, stall_s: float) -> None:
    """503 `not_live` when a watched lane (request slots, key checks) has been full, with
    requests waiting, and has freed nothing for stall_s: the process cannot serve, and a
    restart is the cure. Slow uploads fill only their own lane and never count."""
    stuck = [
        (lane, since) for lane in state.lanes()
        if lane.watched and (since := lane.stalled_for()) > stall_s
    ]  # fmt: skip
    if stuck:
        named = ", ".join(f"{lane.name} stuck for {since:.0f} s" for lane, since in stuck)
        raise ServiceUnavailable(
            f"not live: {named}",
            code="not_live",
            errors=[
                {"component": f"admission.{lane.name}", "held": lane.held, "limit": lane.limit,
                 "waiting": lane.waiting, "stalled_s": round(since, 1),
                 "msg": "every slot held and nothing freed"}
                for lane, since in stuck
            ],
        )  # fmt: skip


def readiness(session: Session) -> dict[str, str]:
    checks = {
        "database": "ok" if database_answers(session) else "down",
        "broker": "ok" if broker_reachable() else "down",
    }
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        raise ServiceUnavailable(
            f"not ready: {', '.join(down)} down", code="not_ready",
            errors=[{"component": name, "msg": "unreachable"} for name in down],
        )  # fmt: skip
    return checks
