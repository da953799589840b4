"""Opaque keyset page tokens over (created_at, id), newest first."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from app.errors import Unprocessable
from app.settings import Settings


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID


def encode_token(cursor: Cursor) -> str:
    raw = json.dumps({"c": cursor.created_at.isoformat(), "i": str(cursor.id)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None) -> Cursor | None:
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return Cursor(created_at=datetime.fromisoformat(data["c"]), id=uuid.UUID(data["i"]))
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise Unprocessable(
            "page_token is not a token this API issued", code="invalid_page_token",
            field="page_token",
        ) from exc  # fmt: skip


def check_limit(limit: int | None, settings: Settings) -> int:
    if limit is None:
        return min(settings.default_page_size, settings.max_page_size)
    if not 1 <= limit <= settings.max_page_size:
        raise Unprocessable(
            f"limit must be between 1 and {settings.max_page_size}",
            code="validation_error", field="limit",
        )  # fmt: skip
    return limit
