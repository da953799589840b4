from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.errors import Unprocessable
from app.pagination import Cursor, check_limit, decode_token, encode_token
from app.settings import Settings


def test_token_round_trip_is_opaque_base64url() -> None:
    cursor = Cursor(datetime(2026, 11, 29, 1, 2, 3, 456789, tzinfo=UTC), uuid.uuid4())
    token = encode_token(cursor)
    assert "=" not in token and "+" not in token and "/" not in token
    assert decode_token(token) == cursor
    assert decode_token(None) is None


@pytest.mark.parametrize("token", ["", "%%%", "bnVsbA", "eyJjIjogMX0", "W10"])
def test_bad_tokens(token: str) -> None:
    with pytest.raises(Unprocessable) as info:
        decode_token(token)
    assert info.value.code == "invalid_page_token"


def test_check_limit() -> None:
    s = Settings(default_page_size=50, max_page_size=200)
    assert check_limit(None, s) == 50
    assert check_limit(200, s) == 200
    for bad in (0, 201):
        with pytest.raises(Unprocessable):
            check_limit(bad, s)
