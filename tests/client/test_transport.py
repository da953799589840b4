"""Retries, problem parsing, config resolution and digest headers, on a mocked transport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from scalpel_client import (
    AsyncScalpelClient,
    ClientConfig,
    RetryPolicy,
    ScalpelAPIError,
    ScalpelClient,
    ScalpelConnectionError,
    ScalpelError,
    resolve_config,
)
from scalpel_client.download import parse_repr_digest, target_path
from tests.client import bodies

NO_WAIT = RetryPolicy(attempts=3, backoff=0.0, max_backoff=0.0)
JOB = bodies.job("j1")


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> ScalpelClient:
    config = ClientConfig(url="http://api.test", api_key="sk_a_b")
    http = httpx.Client(base_url=config.url, transport=httpx.MockTransport(handler))
    return ScalpelClient(config=config, http=http, retry=NO_WAIT)


def scripted(*responses: httpx.Response | Exception) -> tuple[list[httpx.Request], ScalpelClient]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return seen, mocked(handler)


def test_gets_are_retried_on_502_503_504() -> None:
    seen, client = scripted(httpx.Response(503), httpx.Response(504), httpx.Response(200, json=JOB))
    assert client.get_job("j1") == JOB and len(seen) == 3


def test_the_last_retryable_status_is_raised() -> None:
    seen, client = scripted(*[httpx.Response(502, text="bad gateway")] * 3)
    with pytest.raises(ScalpelAPIError) as err:
        client.get_job("j1")
    assert (err.value.status, err.value.code, err.value.detail) == (502, "http_502", "bad gateway")
    assert len(seen) == 3


def test_submit_retries_with_one_idempotency_key() -> None:
    seen, client = scripted(httpx.ReadError("reset"), httpx.Response(202, json=JOB))
    assert client.submit_job({"model": "m"}) == JOB
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(seen) == 2 and len(keys) == 1
    assert seen[0].headers["authorization"] == "Bearer sk_a_b"


def test_a_keyed_post_in_progress_is_retried_until_replayed() -> None:
    busy = {"status": 409, "code": "idempotency_key_in_progress", "title": "Conflict"}
    seen, client = scripted(httpx.Response(409, json=busy), httpx.Response(202, json=JOB))
    assert client.submit_job({"model": "m"}, idempotency_key="k") == JOB and len(seen) == 2
    other = {"status": 409, "code": "conflict", "title": "Conflict"}
    seen, client = scripted(httpx.Response(409, json=other))
    with pytest.raises(ScalpelAPIError, match="conflict"):
        client.submit_job({"model": "m"})
    assert len(seen) == 1


def test_cancel_is_not_retried_once_sent() -> None:
    seen, client = scripted(httpx.Response(503, json={"code": "busy", "title": "Busy"}))
    with pytest.raises(ScalpelAPIError) as err:
        client.cancel_job("j1")
    assert err.value.code == "busy" and len(seen) == 1
    seen, client = scripted(httpx.ReadError("reset"))
    with pytest.raises(ScalpelConnectionError):
        client.cancel_job("j1")
    assert len(seen) == 1
    # Never sent: safe to retry even a cancel.
    seen, client = scripted(httpx.ConnectError("refused"), httpx.Response(200, json=JOB))
    assert client.cancel_job("j1") == JOB and len(seen) == 2


def test_connection_errors_give_up_after_the_attempts() -> None:
    seen, client = scripted(*[httpx.ConnectError("refused")] * 3)
    with pytest.raises(ScalpelConnectionError, match="refused") as err:
        client.get_job("j/1")
    assert len(seen) == 3
    assert (err.value.method, err.value.url) == ("GET", "http://api.test/v1/jobs/j%2F1")
    assert err.value.reason == "refused"
    _, client = scripted(
        httpx.ConnectTimeout(""), httpx.ConnectTimeout(""), httpx.ConnectTimeout("")
    )
    with pytest.raises(ScalpelConnectionError) as err:
        client.list_artifacts("j1")
    assert err.value.reason == "ConnectTimeout"  # no message: the error's kind


def test_a_response_without_the_typed_keys_is_refused() -> None:
    _, client = scripted(httpx.Response(200, json={"id": "j1", "status": "queued"}))
    with pytest.raises(ScalpelError, match="Job lacks cancel_requested, created_at"):
        client.get_job("j1")
    extra = {**JOB, "added_later": 1}  # keys the API adds later pass through
    _, client = scripted(httpx.Response(200, json=extra))
    assert client.get_job("j1")["id"] == "j1"


def test_list_jobs_follows_the_cursor() -> None:
    pages = {None: (["a", "b"], "t1"), "t1": (["c"], "t2"), "t2": ([], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        items, token = pages[request.url.params.get("page_token")]
        assert request.url.params["status"] == "queued"
        return httpx.Response(200, json={"items": [bodies.job(i) for i in items],
                                         "next_page_token": token})  # fmt: skip

    client = mocked(handler)
    assert [j["id"] for j in client.list_jobs(status="queued")] == ["a", "b", "c"]


def test_problem_with_errors_lists_every_field() -> None:
    errors = [{"field": "a.b"}, {"field": "c"}, {"field": "a.b"}]
    problem = {"status": 422, "code": "validation_error", "title": "Invalid", "detail": "x",
               "errors": errors}  # fmt: skip
    _, client = scripted(httpx.Response(422, json=problem))
    with pytest.raises(ScalpelAPIError) as err:
        client.submit_job({})
    assert err.value.field is None and err.value.fields == ["a.b", "c"]
    assert str(err.value) == "422 validation_error: x"


def test_config_precedence(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('url = "http://file"\napi_key = "sk_file"\ntimeout = 5\n')
    env = {"SCALPEL_CONFIG": str(file)}
    assert resolve_config(env=env) == ClientConfig("http://file", "sk_file", 5.0)
    env |= {"SCALPEL_URL": "http://env/", "SCALPEL_API_KEY": "sk_env"}
    assert resolve_config(env=env) == ClientConfig("http://env", "sk_env", 5.0)
    assert resolve_config("http://arg", "sk_arg", env=env).api_key == "sk_arg"
    home = {"XDG_CONFIG_HOME": str(tmp_path / "none")}
    assert resolve_config(env=home) == ClientConfig()
    (tmp_path / "none" / "scalpel").mkdir(parents=True)
    (tmp_path / "none" / "scalpel" / "config.toml").write_text('url = "http://xdg"\n')
    assert resolve_config(env=home).url == "http://xdg"
    with pytest.raises(ScalpelError, match="does not exist"):
        resolve_config(env={"SCALPEL_CONFIG": str(tmp_path / "missing.toml")})
    for bad in ("localhost:8000", "ftp://host", "http://", "http://host:port"):
        with pytest.raises(ScalpelError, match="must look like http://host:port"):
            resolve_config(bad, env={})
    file.write_text("url = [1]\n")
    with pytest.raises(ScalpelError, match="url must be a string"):
        resolve_config(config_path=file, env={})


def test_repr_digest_and_targets(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"x").digest()
    header = f"sha-512=:AAAA:, sha-256=:{base64.b64encode(digest).decode()}:"
    assert parse_repr_digest(header) == digest.hex()
    assert parse_repr_digest("sha-256=:not base64!:") is None
    assert parse_repr_digest(None) is None
    assert target_path(tmp_path, "a.bin") == tmp_path / "a.bin"
    assert target_path(f"{tmp_path}/new/", "a.bin") == tmp_path / "new" / "a.bin"
    assert target_path(tmp_path / "file.bin", "a.bin") == tmp_path / "file.bin"


def test_download_retries_a_dropped_stream_from_where_it_stopped(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    sha = hashlib.sha256(data).hexdigest()
    art = {"id": "a", "filename": "m.bin", "sha256": sha, "size_bytes": len(data),
           "download_url": "/v1/artifacts/a"}  # fmt: skip
    ranges: list[str | None] = []

    class Dropping(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield data[:1000]
            raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("range"))
        headers = {"ETag": f'"{sha}"', "X-Checksum-SHA256": sha}
        if request.headers.get("range") == "bytes=1000-":
            assert request.headers["if-range"] == f'"{sha}"'
            headers["Content-Range"] = f"bytes 1000-{len(data) - 1}/{len(data)}"
            return httpx.Response(206, content=data[1000:], headers=headers)
        return httpx.Response(200, stream=Dropping(), headers=headers)

    path = mocked(handler).download(art, tmp_path)
    assert path.read_bytes() == data and ranges == [None, "bytes=1000-"]


def test_async_client_retries_the_same_way() -> None:
    seen: list[httpx.Request] = []
    queue = [httpx.Response(503), httpx.Response(200, json=JOB)]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    async def go() -> None:
        config = ClientConfig(url="http://api.test", api_key="sk_a_b")
        http = httpx.AsyncClient(base_url=config.url, transport=httpx.MockTransport(handler))
        async with AsyncScalpelClient(config=config, http=http, retry=NO_WAIT) as client:
            assert await client.get_job("j1") == JOB

    asyncio.run(go())
    assert len(seen) == 2 and seen[0].headers["authorization"] == "Bearer sk_a_b"
