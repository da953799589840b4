"""Readiness: the database answers and the broker is reachable."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import ServiceUnavailable
from app.queue import broker_reachable
from app.repositories.health import database_answers


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
