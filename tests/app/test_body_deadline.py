"""The request-body deadline (app.body_deadline): a body that stops, or trickles under the
minimum rate after the grace period, ends with a 408 problem and `Connection: close`; the
app's own answer to the cut is dropped; a prompt body and the wait for a disconnect after it
are never timed."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.body_deadline import BodyDeadline

Message = dict[str, Any]


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(anyio.run, scenario).result(timeout=30)


async def read_all(request: Request) -> Response:
    try:
        body = await request.body()
    except ClientDisconnect:
        return PlainTextResponse("the app's own answer", status_code=400)
    return PlainTextResponse(f"{len(body)} bytes")


async def read_then_wait(request: Request) -> Response:
    """Reads the body, then listens for a disconnect (an event stream does)."""
    await request.body()
    with anyio.move_on_after(0.5):
        await request.receive()
    return PlainTextResponse("waited")


APP = Starlette(routes=[Route("/up", read_all, methods=["POST"]),
                        Route("/wait", read_then_wait, methods=["POST"])])  # fmt: skip


def deadline(idle: float = 0.3, rate: float = 0.0, grace: float = 0.0) -> BodyDeadline:
    return BodyDeadline(APP, idle_timeout_s=idle, min_rate=rate, grace_s=grace)


async def call(
    app: BodyDeadline, path: str, chunks: list[tuple[float, bytes]], length: int
) -> tuple[list[Message], float]:
    """Send `chunks` (delay before each, bytes), the last with more_body False unless the
    body is shorter than `length` (then the client goes quiet for ever)."""
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [(b"content-length", str(length).encode())],
             "http_version": "1.1", "scheme": "http", "server": ("t", 80),
             "client": ("c", 1), "root_path": ""}  # fmt: skip
    pending = list(chunks)
    sent_bytes = 0
    out: list[Message] = []

    async def receive() -> Message:
        nonlocal sent_bytes
        if not pending:
            await anyio.sleep_forever()
        delay, chunk = pending.pop(0)
        await anyio.sleep(delay)
        sent_bytes += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": sent_bytes < length}

    async def send(message: Message) -> None:
        out.append(message)

    t0 = time.monotonic()
    with anyio.fail_after(10):
        await app(scope, receive, send)
    return out, time.monotonic() - t0


def problem(out: list[Message]) -> dict[str, Any]:
    assert len(out) == 2, out
    start, body = out
    assert start["status"] == 408
    headers = dict(start["headers"])
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/problem+json"
    parsed: dict[str, Any] = json.loads(body["body"])
    assert parsed["code"] == "request_timeout" and parsed["status"] == 408
    return parsed


def test_a_body_that_stops_is_cut_off_after_the_idle_timeout() -> None:
    async def scenario() -> None:
        out, took = await call(deadline(idle=0.3), "/up", [(0, b"--abc")], length=5000)
        assert "no request body data for 0.3 s" in problem(out)["detail"]
        assert 0.25 < took < 2.0
        assert b"the app's own answer" not in b"".join(m.get("body", b"") for m in out)

    _run(scenario)


def test_a_trickle_under_the_minimum_rate_is_cut_off_after_the_grace() -> None:
    """One byte every 50 ms (20 B/s) never trips a 1 s idle timeout, but does trip a 200 B/s
    floor once 0.3 s of grace have passed."""

    async def scenario() -> None:
        drip = [(0.05, b"x")] * 200
        out, took = await call(deadline(idle=1, rate=200, grace=0.3), "/up", drip, length=5000)
        assert "slower than 200 bytes/s" in problem(out)["detail"]
        assert 0.25 < took < 1.5

    _run(scenario)


def test_a_prompt_body_and_the_wait_after_it_are_not_timed() -> None:
    async def scenario() -> None:
        chunks = [(0.05, b"a" * 1000)] * 5
        out, _ = await call(deadline(idle=0.3, rate=200, grace=0.1), "/up", chunks, length=5000)
        assert out[0]["status"] == 200 and out[1]["body"] == b"5000 bytes"
        out, took = await call(deadline(idle=0.2), "/wait", [(0, b"abc")], length=3)
        assert out[0]["status"] == 200 and took >= 0.45

    _run(scenario)


def test_the_rate_floor_waits_for_the_grace_and_counts_what_arrived() -> None:
    limits = deadline(idle=10, rate=100, grace=2)
    assert limits.allowance(started_at=0, received=0, now=0) == 2  # the grace
    assert limits.allowance(started_at=0, received=500, now=1) == 4  # 500 B at 100 B/s: t=5
    assert limits.allowance(started_at=0, received=100, now=3) == 0  # already too slow
    assert deadline(idle=10).allowance(started_at=0, received=0, now=100) == 10  # no floor


def test_the_average_is_an_overall_deadline_a_burst_buys_nothing() -> None:
    """4000 of 5000 bytes at once, then a byte every 0.2 s (never idle for 0.3 s): at a
    floor of 1000 B/s the body may take max(grace, 5000 / 1000) = 5 s in all, and the
    trickle is cut off once the 4000 bytes' credit of 4 s has run out, not later."""

    async def scenario() -> None:
        chunks = [(0, b"x" * 4000)] + [(0.2, b"x")] * 900
        out, took = await call(deadline(idle=0.3, rate=1000, grace=1), "/up", chunks, 5000)
        assert "slower than 1000 bytes/s" in problem(out)["detail"]
        assert 3.8 < took < 5.0, took

    _run(scenario)


def test_the_default_floor_bounds_what_one_slow_body_holds() -> None:
    """At the default 64 KiB/s (before: 1 KiB/s, 24 days for a 2 GiB model), the largest
    model upload is complete or cut off within 9.2 h, a 1 MiB JSON body within 17 s."""
    from app.settings import Settings

    s = Settings()
    rate = s.body_min_rate_bytes_s
    assert max(s.body_rate_grace_s, s.max_model_upload_bytes / rate) < 9.2 * 3600
    assert max(s.body_rate_grace_s, 1024 * 1024 / rate) < 17
