"""The HTTP side of Idempotency-Key: the header, and answering a keyed POST from its claim
or with the replay of its first response (marked `Idempotent-Replayed: true`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.services import idempotency as service
from app.tenancy import Caller

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        min_length=1, max_length=255,
        description="Retry-safe submission: a retry with the same key and the same request "
        "gets the first response again (with `Idempotent-Replayed: true`); the same key with "
        "a different request is a 422 `idempotency_key_reused`.",
    ),
]  # fmt: skip
REPLAYED_HEADER = "Idempotent-Replayed"

Body = dict[str, Any]


def respond(
    session: Session, caller: Caller, request: Request, key: str | None, *, status: int,
    body_sha256: Callable[[], str], run: Callable[[], BaseModel],
    headers: Callable[[Body], dict[str, str]] = lambda _body: {},
) -> JSONResponse:  # fmt: skip
    """run() does the work; body_sha256() is only asked for when there is a key."""
    if key is None:
        body = run().model_dump(mode="json")
        return JSONResponse(body, status_code=status, headers=headers(body))
    fingerprint = service.Fingerprint(request.method, request.url.path, body_sha256())
    claim = service.claim(session, caller.tenant_id, key, fingerprint)
    if isinstance(claim, service.Replay):
        replay_headers = {**headers(claim.body), REPLAYED_HEADER: "true"}
        return JSONResponse(claim.body, status_code=claim.status, headers=replay_headers)
    body = run().model_dump(mode="json")
    service.complete(session, claim, status, body)
    return JSONResponse(body, status_code=status, headers=headers(body))
