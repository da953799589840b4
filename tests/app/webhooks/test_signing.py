from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from app.webhooks.signing import SignatureError, headers, new_secret, sign, verify

# The Standard Webhooks specification's published example.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_matches_the_specification_example() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    verify(
        SPEC_SECRET,
        {
            "webhook-id": SPEC_ID,
            "webhook-timestamp": str(SPEC_TS),
            "webhook-signature": SPEC_SIGNATURE,
        },
        SPEC_BODY,
        now=SPEC_TS + 10,
    )


def test_signature_is_hmac_sha256_of_id_timestamp_body() -> None:
    secret = new_secret()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, b"m1.1700000000.{}", hashlib.sha256).digest()
    assert sign(secret, "m1", 1700000000, b"{}") == "v1," + base64.b64encode(expected).decode()


def test_rotation_two_secrets_either_verifies() -> None:
    old, new = new_secret(), new_secret()
    h = headers([new, old], "m2", b"body", timestamp=1700000000)
    assert len(h["webhook-signature"].split(" ")) == 2
    verify(old, h, b"body", now=1700000000)
    verify(new, h, b"body", now=1700000000)
    with pytest.raises(SignatureError):
        verify(new_secret(), h, b"body", now=1700000000)


@pytest.mark.parametrize(("body", "now"), [(b"tampered", 1700000000), (b"body", 1700000000 + 301)])
def test_tampered_or_stale_messages_fail(body: bytes, now: int) -> None:
    secret = new_secret()
    h = headers([secret], "m3", b"body", timestamp=1700000000)
    with pytest.raises(SignatureError):
        verify(secret, h, body, now=now)


def test_missing_headers_fail() -> None:
    with pytest.raises(SignatureError):
        verify(new_secret(), {"webhook-id": "x"}, b"")
