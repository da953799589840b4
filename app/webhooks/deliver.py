"""One delivery attempt of one webhook message: the egress check, the signed POST with a
timeout to the addresses that check vetted (never a second resolution: see
app.webhooks.pinned), and what happened (never raises for the receiver's faults)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from app.webhooks import signing
from app.webhooks.egress import EgressRefused, Resolver, check_url, resolve
from app.webhooks.pinned import PIN

USER_AGENT = "Scalpel-Webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float
    retryable: bool


def attempt(
    client: httpx.Client,
    url: str,
    msg_id: str,
    body: bytes,
    active_secrets: Iterable[str],
    allowed: Iterable[str] = (),
    resolver: Resolver = resolve,
    timestamp: int | None = None,
) -> AttemptResult:
    """POST ``body`` to ``url`` signed with every active secret. 2xx is success; 4xx other
    than 408/429 is final (the receiver rejected the message); the rest is retried.

    ``client`` should be app.webhooks.pinned.pinned_client(): the request carries the vetted
    addresses, and that client connects to them only (a test double may ignore them)."""
    start = time.perf_counter()
    try:
        addresses = check_url(url, allowed, resolver)
    except EgressRefused as exc:
        return AttemptResult(False, None, f"refused ({exc.reason}): {exc}", 0.0, False)
    sent = signing.headers(active_secrets, msg_id, body, timestamp)
    sent["content-type"] = "application/json"
    sent["user-agent"] = USER_AGENT
    try:
        response = client.post(
            url, content=body, headers=sent, follow_redirects=False,
            extensions={PIN: tuple(addresses)},
        )  # fmt: skip
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - start) * 1000
        return AttemptResult(False, None, f"{type(exc).__name__}: {exc}", elapsed, True)
    elapsed = (time.perf_counter() - start) * 1000
    code = response.status_code
    if 200 <= code < 300:
        return AttemptResult(True, code, None, elapsed, False)
    retryable = code >= 500 or code in (408, 429) or 300 <= code < 400
    return AttemptResult(False, code, f"HTTP {code}", elapsed, retryable)
