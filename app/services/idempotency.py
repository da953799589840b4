"""Idempotency-Key: the first response to a keyed request is stored and replayed to retries.

A request claims its key by inserting the row before it does its work, in its own
transaction: a concurrent retry blocks on the unique (tenant_id, key) until that transaction
ends, then fails to insert and replays what was committed. A request that fails rolls its
claim back with everything else, so only successful responses are stored."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import IdempotencyKey
from app.errors import Conflict, Unprocessable
from app.repositories import idempotency as idempotency_repo
from app.services.spool import CHUNK


@dataclass(frozen=True)
class Fingerprint:
    """What a retry must repeat: the method, the path and the body's sha256."""

    method: str
    path: str
    body_sha256: str


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


def json_sha256(data: Any) -> str:
    """Of the canonical JSON: key order and spacing do not matter."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def upload_sha256(stream: BinaryIO, fields: dict[str, str | None]) -> str:
    """Of the uploaded file's content and the form fields; the stream is rewound."""
    h = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(CHUNK):
        h.update(chunk)
    stream.seek(0)
    return json_sha256({"file_sha256": h.hexdigest(), "fields": fields})


def _replay(record: IdempotencyKey, fingerprint: Fingerprint) -> Replay:
    seen = Fingerprint(record.method, record.path, record.request_sha256)
    if seen != fingerprint:
        raise Unprocessable(
            "this Idempotency-Key was used with a different request; use a new key",
            code="idempotency_key_reused", field="Idempotency-Key",
        )  # fmt: skip
    if record.response_status is None or record.response_body is None:
        raise Conflict(
            "a request with this Idempotency-Key is in progress",
            code="idempotency_key_in_progress",
        )  # fmt: skip
    return Replay(record.response_status, record.response_body)


def claim(
    session: Session, tenant_id: uuid.UUID, key: str, fingerprint: Fingerprint
) -> IdempotencyKey | Replay:
    """The new claim, to complete once the work is done, or the first response to replay.
    The claim must be the request's first write: losing the race rolls the session back."""
    existing = idempotency_repo.get(session, tenant_id, key)
    if existing is not None:
        return _replay(existing, fingerprint)
    record = IdempotencyKey(
        tenant_id=tenant_id, key=key, method=fingerprint.method, path=fingerprint.path,
        request_sha256=fingerprint.body_sha256,
    )  # fmt: skip
    try:
        return idempotency_repo.add(session, record)
    except IntegrityError:
        session.rollback()
    existing = idempotency_repo.get(session, tenant_id, key)
    if existing is None:  # the winner's row was deleted meanwhile (its tenant was)
        raise Conflict("the Idempotency-Key could not be claimed; retry", code="conflict")
    return _replay(existing, fingerprint)


def complete(session: Session, record: IdempotencyKey, status: int, body: dict[str, Any]) -> None:
    record.response_status = status
    record.response_body = body
    session.flush()
