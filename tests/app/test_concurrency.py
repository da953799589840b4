"""The in-flight bound: at most `limit` requests inside the app at once, a slot freed when the
response starts (a long stream does not hold it), exempt paths never wait."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from app.concurrency import InflightLimit


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run on a fresh thread: another test (playwright's sync API) may leave an event loop
    running on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(anyio.run, scenario).result(timeout=30)


def build(limit: int) -> tuple[InflightLimit, dict[str, int], anyio.Event]:
    state = {"inside": 0, "peak": 0}
    release = anyio.Event()

    async def slow(_: Request) -> Response:
        state["inside"] += 1
        state["peak"] = max(state["peak"], state["inside"])
        await release.wait()
        state["inside"] -= 1
        return PlainTextResponse("ok")

    async def stream(_: Request) -> Response:
        async def body():  # type: ignore[no-untyped-def]
            yield b"start"
            await release.wait()
            yield b"end"

        return StreamingResponse(body())

    async def health(_: Request) -> Response:
        return PlainTextResponse("up")

    app = Starlette(
        routes=[Route("/slow", slow), Route("/stream", stream), Route("/healthz", health)]
    )
    return InflightLimit(app, limit=limit, exempt=("/healthz",)), state, release


def test_at_most_limit_requests_inside_and_exempt_paths_pass() -> None:
    _run(_limit_scenario)


async def _limit_scenario() -> None:
    app, state, release = build(3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        results: list[int] = []

        async def call() -> None:
            results.append((await client.get("/slow")).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(call)
            await anyio.sleep(0.2)
            assert state["inside"] == 3
            assert (await client.get("/healthz")).text == "up"
            release.set()
        assert results == [200] * 10
        assert state["peak"] == 3


async def _asgi_get(app: InflightLimit, path: str, sent: list[dict[str, object]]) -> None:
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http",
             "server": ("t", 80), "client": ("c", 1), "root_path": ""}  # fmt: skip

    requested = False

    async def receive() -> dict[str, object]:
        nonlocal requested
        if requested:  # the client stays connected
            await anyio.sleep_forever()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]


def test_slot_is_released_when_the_response_starts() -> None:
    _run(_stream_scenario)


async def _stream_scenario() -> None:
    app, state, release = build(1)
    streamed: list[dict[str, object]] = []
    answered: list[dict[str, object]] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_asgi_get, app, "/stream", streamed)
            while not streamed:
                await anyio.sleep(0.01)
            # The stream has started and is still open, yet the next request is admitted.
            tg.start_soon(_asgi_get, app, "/slow", answered)
            while state["inside"] == 0:
                await anyio.sleep(0.01)
            release.set()
    assert streamed[0]["type"] == "http.response.start"
    assert b"".join(m.get("body", b"") for m in streamed[1:]) == b"startend"  # type: ignore[misc]
    assert answered[0]["status"] == 200
