"""When and how long to wait before retrying a request."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({502, 503, 504})
IN_PROGRESS = "idempotency_key_in_progress"
# The request never left this machine: always safe to send again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """attempts counts the first try; the n-th retry waits about backoff * 2**(n-1) seconds
    (with jitter, capped at max_backoff), or what Retry-After asks for, capped the same way."""

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, retry: int, response: httpx.Response | None = None) -> float:
        after = _retry_after(response) if response is not None else None
        if after is not None:
            return min(after, self.max_backoff)
        base = min(self.backoff * 2.0 ** max(retry - 1, 0), self.max_backoff)
        return base * random.uniform(0.5, 1.0)  # jitter, not security


def retry_status(response: httpx.Response, idempotent: bool) -> bool:
    """502/503/504; and the 409 a keyed POST gets while its first try is still running."""
    if not idempotent:
        return False
    if response.status_code == 409:
        return _problem_code(response) == IN_PROGRESS
    return response.status_code in RETRY_STATUSES


def _problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def retry_error(exc: Exception, idempotent: bool) -> bool:
    if isinstance(exc, NOT_SENT):
        return True
    return idempotent and isinstance(exc, httpx.TransportError)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None
