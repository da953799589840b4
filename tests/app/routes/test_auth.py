"""Every endpoint but health and the docs needs a valid, unrevoked API key; anything else is
a 401 problem with `WWW-Authenticate: Bearer`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.services.api_keys import IssuedKey, revoke
from tests.app.conftest import MakeClient
from tests.factories.tenants import make_api_key

SOME_ID = str(uuid.uuid4())
PROTECTED = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", f"/v1/jobs/{SOME_ID}"),
    ("GET", f"/v1/jobs/{SOME_ID}/events"),
    ("POST", f"/v1/jobs/{SOME_ID}/cancel"),
    ("GET", f"/v1/jobs/{SOME_ID}/artifacts"),
    ("GET", f"/v1/artifacts/{SOME_ID}"),
    ("HEAD", f"/v1/artifacts/{SOME_ID}"),
    ("POST", "/v1/models"),
    ("GET", "/v1/models"),
    ("GET", f"/v1/models/{SOME_ID}"),
    ("POST", "/v1/datasets"),
    ("GET", "/v1/datasets"),
    ("GET", f"/v1/datasets/{SOME_ID}"),
]


def unauthenticated(r: Any) -> dict[str, Any]:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    if r.request.method == "HEAD":
        return {}
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == "unauthenticated"
    assert body["status"] == 401
    return body


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_resource_needs_a_key(make_client: MakeClient, method: str, path: str) -> None:
    body = unauthenticated(make_client(key=None).request(method, path))
    assert body == {} or "API key is required" in body["detail"]


BAD_KEYS = [
    "nope",
    "sk_",
    "sk_deadbeef",
    "sk_deadbeef_not-a-key-we-issued",
    "pk_deadbeef_x",
]


@pytest.mark.parametrize("token", BAD_KEYS)
def test_unknown_or_malformed_key_is_401(make_client: MakeClient, token: str) -> None:
    client = make_client(key=None)
    unauthenticated(client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"}))
    unauthenticated(client.get("/v1/jobs", headers={"X-API-Key": token}))


def test_right_prefix_wrong_secret_is_401(make_client: MakeClient, api_key: IssuedKey) -> None:
    forged = api_key.token[:-4] + ("AAAA" if not api_key.token.endswith("AAAA") else "BBBB")
    r = make_client(key=None).get("/v1/jobs", headers={"Authorization": f"Bearer {forged}"})
    assert "not valid" in unauthenticated(r)["detail"]


def test_other_authorization_schemes_are_401(make_client: MakeClient, api_key: IssuedKey) -> None:
    r = make_client(key=None).get("/v1/jobs", headers={"Authorization": f"Basic {api_key.token}"})
    unauthenticated(r)


def test_bearer_and_x_api_key_both_work(make_client: MakeClient, api_key: IssuedKey) -> None:
    client = make_client(key=None)
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {api_key.token}"}).is_success
    assert client.get("/v1/jobs", headers={"X-API-Key": api_key.token}).is_success


def test_revoked_key_is_401(make_client: MakeClient, db_session: Session) -> None:
    issued = make_api_key(db_session, "tenant-r")
    client = make_client(key=issued, api_key_cache_s="0")
    assert client.get("/v1/jobs").status_code == 200
    revoke(db_session, issued.api_key)
    db_session.commit()
    assert "revoked" in unauthenticated(client.get("/v1/jobs"))["detail"]
    # Another key of the same tenant still works.
    assert make_client(key=make_api_key(db_session, "tenant-r")).get("/v1/jobs").is_success


def test_key_is_stored_hashed(api_key: IssuedKey) -> None:
    prefix, _, secret = api_key.token.removeprefix("sk_").partition("_")
    assert api_key.api_key.prefix == prefix
    assert secret not in api_key.api_key.hash and len(api_key.api_key.hash) == 64


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/docs"])
def test_health_and_docs_are_open(make_client: MakeClient, path: str) -> None:
    assert make_client(key=None).get(path).status_code == 200


def test_openapi_declares_the_key_schemes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "`Bearer sk_...`"
    }  # fmt: skip
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if path in ("/healthz", "/readyz"):
                assert "security" not in op
                continue
            assert {"bearer": []} in op["security"], (method, path)
            assert op["responses"]["401"]["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }


def test_a_cached_key_skips_the_key_query_until_its_ttl(
    make_client: MakeClient, db_session: Session
) -> None:
    """The documented trade-off: within api_key_cache_s a process keeps trusting a key it
    checked, revoked since or not; an unknown key is never cached."""
    issued = make_api_key(db_session, "tenant-c")
    client = make_client(key=issued, api_key_cache_s="300")
    statements: list[str] = []
    listen = db_session.connection()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(listen, "before_cursor_execute", record)
    try:
        assert client.get("/v1/jobs").status_code == 200
        assert any("api_key" in s for s in statements)
        statements.clear()
        revoke(db_session, issued.api_key)
        db_session.commit()
        statements.clear()
        assert client.get("/v1/jobs").status_code == 200  # still trusted: cached
        assert not any("api_key" in s for s in statements)
        bad = issued.token[:-4] + "xxxx"
        for _ in range(2):
            unauthenticated(client.get("/v1/jobs", headers={"Authorization": f"Bearer {bad}"}))
        assert sum("api_key" in s for s in statements) == 2  # refused keys always query
    finally:
        event.remove(listen, "before_cursor_execute", record)
