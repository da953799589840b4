"""Check the webhooks Scalpel sends, in the receiver (Standard Webhooks, v1 signatures).

Each delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`:
`v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}` keyed with the bytes of
the secret (`whsec_<base64>`, shown once when the webhook is made). While a secret is being
rotated a delivery carries one signature per active secret, space-separated; a receiver may
likewise hold several secrets (the old and the new) and accepts a message any of them signed::

    from scalpel_client import webhooks

    try:
        webhooks.verify(secret, request.headers, raw_body)  # the body bytes, as received
    except webhooks.WebhookVerificationError:
        return 400

A timestamp more than `tolerance_s` (default 300) away from now, in either direction, is
refused, which bounds how long a captured delivery can be replayed; within that window a
receiver that must not act twice keeps the `webhook-id`s it has handled (every retry of one
delivery has the same id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from scalpel_client.errors import ScalpelError

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300
VERSION = "v1"


class WebhookVerificationError(ScalpelError, ValueError):
    """The delivery's headers, timestamp or signature do not verify."""


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is whsec_ then base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message under one secret."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return f"{VERSION}," + base64.b64encode(digest).decode()


def verify(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: int | None = None,
) -> None:
    """Raise WebhookVerificationError unless a signature in `headers` matches `body` under the
    secret (or one of the secrets) within `tolerance_s` of `now` (default: the clock). Header
    names are matched case-insensitively; `body` must be the bytes received, unparsed."""
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys:
        raise ValueError("no webhook secret to verify with")
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        received = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise WebhookVerificationError("missing or malformed webhook headers") from exc
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook timestamp outside the tolerance")
    raw = body.encode() if isinstance(body, str) else body
    offered = [s.encode() for s in received if s.startswith(f"{VERSION},")]
    for key in keys:
        expected = sign(key, msg_id, timestamp, raw).encode()
        if any(hmac.compare_digest(expected, s) for s in offered):
            return
    raise WebhookVerificationError("no matching signature")
