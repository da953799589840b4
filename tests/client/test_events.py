"""A job's events: the text/event-stream parser, the stream's reconnects on a mocked
transport, then paging and streaming against the real API server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from scalpel_client import (
    AsyncScalpelClient,
    ClientConfig,
    JobEvent,
    RetryPolicy,
    ScalpelAPIError,
    ScalpelClient,
    ScalpelConnectionError,
    ScalpelError,
)
from scalpel_client.events import SSEParser
from tests.client import bodies
from tests.client.server import Server, spec

NO_WAIT = RetryPolicy(attempts=3, backoff=0.0, max_backoff=0.0)
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


def feed(text: str) -> tuple[SSEParser, list[tuple[str, str, str | None]]]:
    parser = SSEParser()
    out = []
    for line in text.split("\n"):
        message = parser.feed(line)
        if message is not None:
            out.append((message.event, message.data, message.id))
    return parser, out


def test_the_parser_follows_the_event_stream_format() -> None:
    parser, messages = feed(
        "retry: 1500\n\n: heartbeat\n\nid: 1\nevent: status\ndata: {\"a\":\ndata: 1}\n\n"
        "data:no space\n\nevent: ignored-without-data\n\nid: 2\nid\nevent: end\ndata: {}\n\n"
        "retry: soon\nunknown: x\n\n"
    )  # fmt: skip
    assert messages == [
        ("status", '{"a":\n1}', "1"),
        ("message", "no space", "1"),  # the last id carries over
        ("end", "{}", ""),  # a bare `id` field resets it
    ]
    assert parser.retry_ms == 1500 and parser.comments == 1


def frames(*events: dict[str, Any], end: dict[str, Any] | None = None) -> bytes:
    text = "retry: 0\n\n"
    for e in events:
        text += f"id: {e['id']}\nevent: {e['kind']}\ndata: {json.dumps(e)}\n\n"
    if end is not None:
        text += f"event: end\ndata: {json.dumps(end)}\n\n"
    return text.encode()


class Dropping(httpx.SyncByteStream):
    def __init__(self, first: bytes) -> None:
        self.first = first

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise httpx.ReadError("connection reset")


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> ScalpelClient:
    config = ClientConfig(url="http://api.test", api_key="sk_a_b")
    http = httpx.Client(base_url=config.url, transport=httpx.MockTransport(handler))
    return ScalpelClient(config=config, http=http, retry=NO_WAIT)


def test_the_stream_resumes_after_the_last_event_until_the_end() -> None:
    e1, e2 = bodies.event(1, status="queued"), bodies.event(2, "stage", stage="prune")
    e3 = bodies.event(3, status="canceled")
    replies = [
        httpx.Response(200, headers=SSE, content=frames(e1)),  # closed by the server
        httpx.Response(503),  # briefly unavailable
        httpx.Response(200, headers=SSE, stream=Dropping(frames(e2))),  # the connection drops
        httpx.Response(200, headers=SSE, content=frames(e3, end=bodies.job(status="canceled"))),
    ]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replies.pop(0)

    with mocked(handler) as client, client.stream_events("j1", after=0) as stream:
        got = [e["id"] for e in stream]
    assert got == [1, 2, 3] and not replies
    assert stream.job is not None and stream.job["status"] == "canceled"
    assert [r.headers["last-event-id"] for r in seen] == ["0", "1", "1", "2"]
    assert {r.headers["accept"] for r in seen} == {"text/event-stream"}
    assert seen[0].url.path == "/v1/jobs/j1/events"


def stream_error(handler: Callable[[httpx.Request], httpx.Response]) -> ScalpelError:
    with mocked(handler) as client, pytest.raises(ScalpelError) as err:
        list(client.stream_events("j1"))
    return err.value


def test_a_stream_that_keeps_failing_gives_up() -> None:
    empty = stream_error(lambda r: httpx.Response(200, headers=SSE, content=b""))
    assert "keeps closing empty" in str(empty)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    down = stream_error(refuse)
    assert isinstance(down, ScalpelConnectionError)
    assert down.url == "http://api.test/v1/jobs/j1/events" and down.reason == "refused"
    json_page = stream_error(lambda r: httpx.Response(200, json={"items": []}))
    assert "not an event stream" in str(json_page)
    problem = {"status": 429, "code": "too_many_streams", "title": "Too Many Requests"}
    busy = stream_error(lambda r: httpx.Response(429, json=problem))
    assert isinstance(busy, ScalpelAPIError) and busy.code == "too_many_streams"


def test_heartbeats_count_as_a_live_connection() -> None:
    """More drops than attempts, each after a heartbeat: the stream is alive, so it goes on."""
    replies = [httpx.Response(200, headers=SSE, stream=Dropping(b"retry: 0\n\n: heartbeat\n\n"))
               for _ in range(NO_WAIT.attempts + 1)]  # fmt: skip
    replies.append(httpx.Response(200, headers=SSE, content=frames(end=bodies.job())))
    with mocked(lambda r: replies.pop(0)) as client, client.stream_events("j1") as stream:
        assert list(stream) == [] and stream.job is not None and not replies


def test_the_async_stream_resumes_the_same_way() -> None:
    replies = [frames(bodies.event(1)), frames(bodies.event(2), end=bodies.job(status="failed"))]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers=SSE, content=replies.pop(0))

    async def go() -> None:
        config = ClientConfig(url="http://api.test")
        http = httpx.AsyncClient(base_url=config.url, transport=httpx.MockTransport(handler))
        async with AsyncScalpelClient(config=config, http=http, retry=NO_WAIT) as client:
            async with client.stream_events("j1") as stream:
                assert [e["id"] async for e in stream] == [1, 2]
            assert stream.job is not None and stream.job["status"] == "failed"

    asyncio.run(go())
    assert "last-event-id" not in seen[0].headers and seen[1].headers["last-event-id"] == "1"


def test_an_end_for_a_deleted_job_ends_with_no_job() -> None:
    body = frames(bodies.event(1), end={})
    with mocked(lambda r: httpx.Response(200, headers=SSE, content=body)) as client:
        stream = client.stream_events("j1")
        assert [e["id"] for e in stream] == [1] and stream.job is None


# -- against the real API ------------------------------------------------------------------


def test_events_page_by_page_and_in_one_go(client: ScalpelClient) -> None:
    job = client.submit_job(spec())
    client.cancel_job(job["id"])
    page = client.job_events(job["id"], limit=1)
    assert [e["status"] for e in page["items"]] == ["queued"] and page["next_after"] == 1
    events = list(client.iter_events(job["id"]))
    assert [(e["id"], e["kind"], e["status"]) for e in events] == [
        (1, "status", "queued"), (2, "status", "canceled")]  # fmt: skip
    assert [e["id"] for e in client.iter_events(job["id"], after=1)] == [2]


def test_the_stream_of_a_finished_job_replays_then_ends(client: ScalpelClient) -> None:
    job = client.submit_job(spec())
    client.cancel_job(job["id"])
    with client.stream_events(job["id"]) as stream:
        assert [e["status"] for e in stream] == ["queued", "canceled"]
    assert stream.job is not None and stream.job["status"] == "canceled"
    with client.stream_events(job["id"], after=1) as stream:
        assert [e["id"] for e in stream] == [2]
    with pytest.raises(ScalpelAPIError) as err:
        list(client.stream_events("00000000-0000-0000-0000-000000000000"))
    assert (err.value.status, err.value.code) == (404, "job_not_found")


def test_the_stream_delivers_events_as_they_happen(server: Server) -> None:
    with ScalpelClient(server.url, server.api_key) as client:
        job = client.submit_job(spec())
        seen: list[JobEvent] = []
        first = threading.Event()

        def follow() -> None:
            with ScalpelClient(server.url, server.api_key) as other:
                for event in other.stream_events(job["id"]):
                    seen.append(event)
                    first.set()

        reader = threading.Thread(target=follow)
        reader.start()
        assert first.wait(30), "no first event"
        assert [e["status"] for e in seen] == ["queued"]  # the job is still queued
        client.cancel_job(job["id"])
        reader.join(30)
        assert not reader.is_alive()
        assert [e["status"] for e in seen] == ["queued", "canceled"]


def test_the_async_stream(server: Server) -> None:
    async def go() -> None:
        async with AsyncScalpelClient(server.url, server.api_key) as client:
            job = await client.submit_job(spec())
            await client.cancel_job(job["id"])
            assert [e["id"] async for e in client.iter_events(job["id"])] == [1, 2]
            async with client.stream_events(job["id"]) as stream:
                assert [e["status"] async for e in stream] == ["queued", "canceled"]
            assert stream.job is not None and stream.job["status"] == "canceled"

    asyncio.run(go())
