"""scalpel_client.webhooks.verify against what the API's own signer (app.webhooks.signing)
puts on a delivery: the headers, the rotation's several signatures, the tolerance window."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from app.webhooks import signing
from scalpel_client import ScalpelError
from scalpel_client.webhooks import WebhookVerificationError, verify

BODY = b'{"type":"job.succeeded","data":{"id":"j1"}}'
NOW = 1_750_000_000
Change = Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]


def delivery(*secrets: str, msg_id: str = "msg_1", at: int = NOW) -> dict[str, str]:
    return signing.headers(list(secrets), msg_id, BODY, timestamp=at)


def test_a_delivery_signed_by_the_api_verifies() -> None:
    secret = signing.new_secret()
    headers = delivery(secret)
    verify(secret, headers, BODY, now=NOW)
    verify(secret, {k.title(): v for k, v in headers.items()}, BODY.decode(), now=NOW)
    signing.verify(secret, headers, BODY, now=NOW)  # the API's own check agrees


@pytest.mark.parametrize(
    "change",
    [
        lambda h, b: (h, b + b" "),  # the body
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),  # the id
        lambda h, b: ({**h, "webhook-timestamp": str(NOW + 1)}, b),  # the timestamp
    ],
)
def test_any_change_breaks_the_signature(change: Change) -> None:
    secret = signing.new_secret()
    headers, body = change(delivery(secret), BODY)
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(secret, headers, body, now=NOW)


def test_another_secret_does_not_verify() -> None:
    with pytest.raises(WebhookVerificationError) as err:
        verify(signing.new_secret(), delivery(signing.new_secret()), BODY, now=NOW)
    assert isinstance(err.value, ScalpelError) and isinstance(err.value, ValueError)


def test_rotation_both_ways() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    both = delivery(old, new)  # the API signs with every active secret during a rotation
    assert len(both["webhook-signature"].split(" ")) == 2
    verify(old, both, BODY, now=NOW)
    verify(new, both, BODY, now=NOW)
    # A receiver holding the old and the new secret accepts a delivery signed by either.
    verify([new, old], delivery(old), BODY, now=NOW)
    verify([new, old], delivery(new), BODY, now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify([new, old], delivery(signing.new_secret()), BODY, now=NOW)
    with pytest.raises(ValueError, match="no webhook secret"):
        verify([], both, BODY, now=NOW)


def test_the_tolerance_window_bounds_replays() -> None:
    secret = signing.new_secret()
    verify(secret, delivery(secret, at=NOW - 300), BODY, now=NOW)
    verify(secret, delivery(secret, at=NOW + 300), BODY, now=NOW)
    for at in (NOW - 301, NOW + 301):
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            verify(secret, delivery(secret, at=at), BODY, now=NOW)
    old = delivery(secret, at=NOW - 3600)
    verify(secret, old, BODY, now=NOW, tolerance_s=3600)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(secret, old, BODY, now=NOW, tolerance_s=3599)
    # Without `now`, the clock: a delivery made just now verifies, one from long ago does not.
    verify(secret, signing.headers([secret], "m", BODY), BODY)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(secret, delivery(secret, at=NOW - 10**6), BODY)


def test_missing_or_malformed_headers() -> None:
    secret = signing.new_secret()
    good = delivery(secret)
    for name in good:
        with pytest.raises(WebhookVerificationError, match="headers"):
            verify(secret, {k: v for k, v in good.items() if k != name}, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError, match="headers"):
        verify(secret, {**good, "webhook-timestamp": "soon"}, BODY, now=NOW)
    digest = good["webhook-signature"].removeprefix("v1,")
    for sig in (f"v2,{digest}", digest, "v1,ünïcode"):
        with pytest.raises(WebhookVerificationError, match="no matching"):
            verify(secret, {**good, "webhook-signature": sig}, BODY, now=NOW)


def test_a_secret_must_be_whsec_base64() -> None:
    headers = delivery(signing.new_secret())
    raw = base64.b64encode(b"k" * 24).decode()
    for bad in (raw, "whsec_not base64!"):
        with pytest.raises(ValueError, match="whsec_"):
            verify(bad, headers, BODY, now=NOW)
