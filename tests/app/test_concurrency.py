"""Admission (app.concurrency): a key is checked before a slot is taken and a refused request
never holds one, a body no route takes is refused before any of it is read, uploads and other
bodies have lanes of their own and one key holds at most its share of them, a waiter gives up
with a 503, concurrent checks of one key share one query (and survive a failed one), a slot
is freed when the response starts, /healthz never waits and says when a lane is stuck."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from app import concurrency
from app.admission_state import AdmissionState, Lane
from app.concurrency import Admission
from app.db.session import make_engine
from app.deps import KeySessions
from app.errors import ServiceUnavailable, Unauthenticated
from app.services.health import liveness
from app.services.key_cache import KeyCache
from app.settings import Settings
from app.tenancy import Caller
from tests.app.conftest import MakeClient
from tests.conftest import PG_ADMIN_URL

GOOD = "sk_0123abcd_" + "g" * 32
OTHER = "sk_4567cdef_" + "o" * 32  # another tenant's key
TENANT = uuid.uuid4()


def no_sessions() -> AbstractContextManager[Session]:
    raise AssertionError("every key here is cached: no key check expected")


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run on a fresh thread: another test (playwright's sync API) may leave an event loop
    running on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(anyio.run, scenario).result(timeout=30)


class Harness:
    """A small app behind Admission: /v1/slow and /v1/datasets hold until released."""

    def __init__(
        self, *, requests: int = 2, uploads: int = 1, body_reads: int = 2, wait_s: float = 5.0,
        per_key: int = 2, key_sessions: KeySessions = no_sessions,
    ) -> None:  # fmt: skip
        self.release = anyio.Event()
        self.inside: dict[str, int] = {"slow": 0, "upload": 0}
        self.state = AdmissionState.of(
            requests=requests, uploads=uploads, body_reads=body_reads, key_checks=1,
            wait_s=wait_s, per_key=per_key,
        )  # fmt: skip
        cache = KeyCache(300)
        cache.put(GOOD, Caller(tenant_id=TENANT, is_admin=False))
        cache.put(OTHER, Caller(tenant_id=uuid.uuid4(), is_admin=False))

        async def slow(request: Request) -> Response:
            self.inside["slow"] += 1
            await self.release.wait()
            self.inside["slow"] -= 1
            caller = request.state.caller
            return JSONResponse({"tenant": str(caller.tenant_id), "key": request.state.api_key})

        async def upload(request: Request) -> Response:
            self.inside["upload"] += 1
            await self.release.wait()
            body = await request.body()
            self.inside["upload"] -= 1
            return PlainTextResponse(str(len(body)))

        async def submit(request: Request) -> Response:
            return JSONResponse({"got": json.loads(await request.body())})

        async def stream(_: Request) -> Response:
            async def body():  # type: ignore[no-untyped-def]
                yield b"start"
                await self.release.wait()
                yield b"end"

            return StreamingResponse(body())

        async def health(_: Request) -> Response:
            return PlainTextResponse("up")

        inner = Starlette(
            routes=[
                Route("/v1/slow", slow), Route("/v1/datasets", upload, methods=["POST"]),
                Route("/v1/jobs", submit, methods=["POST"]), Route("/stream", stream),
                Route("/healthz", health), Route("/readyz", health),
            ]
        )  # fmt: skip
        self.app = Admission(
            inner, state=self.state, key_cache=cache, key_sessions=key_sessions,
            max_body_bytes=1000, router=inner.router,
        )  # fmt: skip

    def client(self, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=raise_app_exceptions)
        return httpx.AsyncClient(transport=transport, base_url="http://t", timeout=10)


def key(token: str = GOOD) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.sleep(0.01)


def test_a_lane_bounds_its_holders_and_a_waiter_gives_up() -> None:
    async def scenario() -> None:
        lane = Lane("requests", 2, wait_s=0.2)
        assert await lane.acquire() and await lane.acquire()
        t0 = time.monotonic()
        assert not await lane.acquire()
        assert 0.15 < time.monotonic() - t0 < 1.0
        lane.release()
        assert await lane.acquire() and lane.held == 2

    _run(scenario)


def test_a_lane_is_stalled_only_when_full_wanted_and_frozen() -> None:
    now = [100.0]
    lane = Lane("requests", 2, wait_s=1, clock=lambda: now[0])
    lane.held = 2
    lane._progress_at = now[0]
    now[0] += 50
    assert lane.stalled_for() == 0.0  # full, but nobody wants a slot
    lane.waiting = 1
    assert lane.stalled_for() == 50.0
    lane.waiting = 0  # the waiter gave up: still wanted
    lane._wanted = True
    assert lane.stalled_for() == 50.0
    lane.held = 1  # a slot is free
    assert lane.stalled_for() == 0.0


def test_refused_keys_never_hold_a_slot() -> None:
    """With every request slot and the upload slot held, a request without a key, or with a
    malformed one, is a 401 at once: it never waited for (nor took) a slot."""

    async def scenario() -> None:
        h = Harness(requests=2, uploads=1)
        async with h.client() as client, anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(partial(client.get, "/v1/slow", headers=key()))
            tg.start_soon(lambda: client.post("/v1/datasets", content=b"x", headers=key()))
            await until(lambda: h.inside == {"slow": 2, "upload": 1})
            with anyio.fail_after(1):
                for headers in ({}, key("not-a-key"), {"X-API-Key": "sk_"}):
                    r = await client.get("/v1/slow", headers=headers)
                    assert r.status_code == 401, r.text
                    assert r.json()["code"] == "unauthenticated"
                    assert r.headers["www-authenticate"] == "Bearer"
                r = await client.post("/v1/datasets", content=b"x" * 10)
                assert r.status_code == 401 and r.headers["connection"] == "close"
            assert (h.state.requests.held, h.state.uploads.held) == (2, 1)
            assert h.state.requests.waiting == 0 and h.state.uploads.waiting == 0
            h.release.set()

    _run(scenario)


def test_uploads_and_status_reads_never_wait_for_each_other() -> None:
    async def scenario() -> None:
        h = Harness(requests=1, uploads=1)
        async with h.client() as client, anyio.create_task_group() as tg:
            tg.start_soon(lambda: client.post("/v1/datasets", content=b"x", headers=key()))
            await until(lambda: h.inside["upload"] == 1)
            tg.start_soon(partial(client.get, "/v1/slow", headers=key()))  # admitted beside it
            await until(lambda: h.inside["slow"] == 1)
            assert h.state.uploads.held == 1 and h.state.requests.held == 1
            h.release.set()

    _run(scenario)


def test_the_route_gets_the_caller_admission_found() -> None:
    async def scenario() -> None:
        h = Harness()
        h.release.set()
        async with h.client() as client:
            r = await client.get("/v1/slow", headers={"X-API-Key": GOOD})
            assert r.json() == {"tenant": str(TENANT), "key": "0123abcd"}

    _run(scenario)


def test_a_waiter_gives_up_with_503_overloaded() -> None:
    async def scenario() -> None:
        h = Harness(requests=1, wait_s=0.2)
        async with h.client() as client, anyio.create_task_group() as tg:
            tg.start_soon(partial(client.get, "/v1/slow", headers=key()))
            await until(lambda: h.inside["slow"] == 1)
            r = await client.get("/v1/slow", headers=key())
            assert r.status_code == 503 and r.json()["code"] == "overloaded"
            assert r.headers["retry-after"] == "2"
            assert (await client.get("/healthz")).text == "up"  # never waits
            h.release.set()

    _run(scenario)


def test_a_json_body_is_read_before_a_slot_is_taken() -> None:
    """A body that has not arrived holds a body-read place, not a request slot; it reaches
    the route whole once it has."""

    async def scenario() -> None:
        h = Harness(requests=1)
        arrived = anyio.Event()
        sent: list[dict[str, Any]] = []
        chunks = [b'{"a": ', b"1}"]

        async def receive() -> dict[str, Any]:
            if not chunks:
                await anyio.sleep_forever()
            if len(chunks) == 1:
                await arrived.wait()
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"content-length", b"8"), (b"authorization", f"Bearer {GOOD}".encode())]
        scope = asgi_scope("POST", "/v1/jobs", headers)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(h.app, scope, receive, send)
                await until(lambda: h.state.body_reads.held == 1)
                assert h.state.requests.held == 0
                arrived.set()
                await until(lambda: len(sent) == 2)
                tg.cancel_scope.cancel()
        assert sent[0]["status"] == 200
        assert json.loads(sent[1]["body"]) == {"got": {"a": 1}}
        assert h.state.requests.held == 0 and h.state.body_reads.held == 0

    _run(scenario)


def test_an_oversized_chunked_json_body_is_413() -> None:
    async def scenario() -> None:
        h = Harness()
        async with h.client() as client:

            async def body():  # type: ignore[no-untyped-def]
                for _ in range(3):
                    yield b"x" * 600

            r = await client.post("/v1/jobs", content=body(), headers=key())
            assert r.status_code == 413 and r.json()["code"] == "payload_too_large"

    _run(scenario)


def asgi_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": headers, "http_version": "1.1", "scheme": "http",
            "server": ("t", 80), "client": ("c", 1), "root_path": "", "state": {}}  # fmt: skip


def test_slot_is_released_when_the_response_starts() -> None:
    async def scenario() -> None:
        h = Harness(requests=1)
        streamed: list[dict[str, Any]] = []
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if requested:  # the client stays connected
                await anyio.sleep_forever()
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            streamed.append(message)

        with anyio.fail_after(5):
            async with h.client() as client, anyio.create_task_group() as tg:
                tg.start_soon(h.app, asgi_scope("GET", "/stream", []), receive, send)
                await until(lambda: bool(streamed))
                # The stream has started and is still open, yet the next request is admitted.
                tg.start_soon(partial(client.get, "/v1/slow", headers=key()))
                await until(lambda: h.inside["slow"] == 1)
                h.release.set()
        assert streamed[0]["type"] == "http.response.start"
        assert b"".join(m.get("body", b"") for m in streamed[1:]) == b"startend"

    _run(scenario)


def test_liveness_names_a_stuck_lane_and_ignores_full_uploads() -> None:
    state = AdmissionState.of(requests=2, uploads=1, body_reads=1, key_checks=1, wait_s=1)
    state.uploads.held, state.uploads.waiting = 1, 5
    state.uploads._progress_at -= 600
    liveness(state, stall_s=60)  # slow uploads fill their own lane: still live
    state.requests.held, state.requests.waiting = 2, 3
    state.requests._progress_at -= 61
    with pytest.raises(ServiceUnavailable) as caught:
        liveness(state, stall_s=60)
    assert caught.value.code == "not_live"
    assert caught.value.errors is not None
    assert [e["component"] for e in caught.value.errors] == ["admission.requests"]


def test_healthz_is_503_while_request_slots_are_stuck(make_client: MakeClient) -> None:
    client = make_client(liveness_stall_s="30")
    assert client.get("/healthz").json() == {"status": "ok"}
    lane = client.app.state.admission.requests  # type: ignore[attr-defined]
    lane.held, lane.waiting = lane.limit, 4
    lane._progress_at = time.monotonic() - 31
    try:
        r = client.get("/healthz")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["code"] == "not_live" and "requests stuck" in body["detail"]
        assert body["errors"][0]["waiting"] == 4
        lane._progress_at = time.monotonic()  # a slot was just freed: live again
        assert client.get("/healthz").status_code == 200
    finally:
        lane.held, lane.waiting = 0, 0


def test_concurrent_checks_of_one_key_share_one_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """When a key is not cached (its entry expired under load), the requests presenting it
    wait for one check instead of each queueing a query of its own; a refusal is shared too."""
    calls: list[str] = []
    fresh = "sk_feedbeef_" + "f" * 32

    def slow_check(_sessions: object, token: str) -> Caller:
        calls.append(token)
        time.sleep(0.2)
        if token != fresh:
            raise Unauthenticated("the API key is not valid")
        return Caller(tenant_id=TENANT, is_admin=False)

    monkeypatch.setattr(concurrency, "check_key", slow_check)

    async def scenario() -> None:
        h = Harness(requests=20)
        h.release.set()
        async with h.client() as client:
            for token, status in ((fresh, 200), ("sk_deadbeef_" + "d" * 32, 401)):
                calls.clear()
                codes: list[int] = []

                async def get(token: str = token, codes: list[int] = codes) -> None:
                    codes.append((await client.get("/v1/slow", headers=key(token))).status_code)

                async with anyio.create_task_group() as tg:
                    for _ in range(10):
                        tg.start_soon(get)
                assert codes == [status] * 10 and len(calls) == 1

    _run(scenario)


class Stalled:
    """An ASGI client whose body never comes (it records whether anyone asked for it)."""

    def __init__(self) -> None:
        self.asked = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.asked += 1
        await anyio.sleep_forever()
        raise AssertionError

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def answer(self) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
        start, body = self.sent
        return start["status"], dict(start["headers"]), json.loads(body["body"])


def body_scope(method: str, path: str, token: str | None = None) -> dict[str, Any]:
    headers = [(b"content-length", b"5000"), (b"content-type", b"application/json")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return asgi_scope(method, path, headers)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("POST", "/readyz", 405, "method_not_allowed"), ("POST", "/docs", 404, "not_found"),
     ("PUT", "/anything", 404, "not_found"), ("POST", "/stream", 405, "method_not_allowed")],
)  # fmt: skip
def test_a_body_no_route_takes_is_refused_before_it_is_read(
    method: str, path: str, status: int, code: str
) -> None:
    """Without a key, outside /v1/: a slow body there would hold a body-read place (before
    the fix: for as long as its trickle lasted); now it is a 404/405 at once, the body never
    asked for, and the connection closed."""

    async def scenario() -> None:
        h = Harness()
        client = Stalled()
        with anyio.fail_after(2):
            await h.app(body_scope(method, path), client.receive, client.send)
        got, headers, problem = client.answer()
        assert (got, problem["code"]) == (status, code), problem
        assert headers[b"connection"] == b"close"
        assert client.asked == 0 and h.state.body_reads.held == 0

    _run(scenario)


def test_a_body_for_an_unknown_v1_path_is_refused_once_the_key_is_checked() -> None:
    async def scenario() -> None:
        h = Harness()
        for token, status in ((None, 401), (GOOD, 405)):
            client = Stalled()
            with anyio.fail_after(2):
                await h.app(body_scope("PUT", "/v1/jobs", token), client.receive, client.send)
            assert client.answer()[0] == status and client.asked == 0

    _run(scenario)


def test_one_key_holds_at_most_its_share_of_upload_slots() -> None:
    """Two uploads of one key hold its share (of four slots): its third is a 429 at once,
    taking no slot, while another key's upload is admitted; a finished upload gives the
    share back."""

    async def scenario() -> None:
        h = Harness(uploads=4, per_key=2)
        with anyio.fail_after(5):  # before the fix: the third upload waited for its slot
            await _share_of_uploads(h)

    _run(scenario)


async def _share_of_uploads(h: Harness) -> None:
    """The upload-share scenario (see the test above)."""
    async with h.client() as client, anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(lambda: client.post("/v1/datasets", content=b"x", headers=key()))
        await until(lambda: h.inside["upload"] == 2)
        r = await client.post("/v1/datasets", content=b"x", headers=key())
        assert r.status_code == 429, r.text
        assert r.json()["code"] == "too_many_uploads" and r.headers["retry-after"] == "5"
        assert r.headers["connection"] == "close"
        assert h.state.uploads.held == 2 and h.state.uploads.waiting == 0
        tg.start_soon(lambda: client.post("/v1/datasets", content=b"x", headers=key(OTHER)))
        await until(lambda: h.inside["upload"] == 3)
        h.release.set()
    assert h.state.uploads_by_key.held("0123abcd") == 0
    async with h.client() as client:
        assert (await client.post("/v1/datasets", content=b"x", headers=key())).text == "1"


def test_one_key_holds_at_most_its_share_of_body_reads() -> None:
    async def scenario() -> None:
        h = Harness(body_reads=8, per_key=2)
        stalled = [Stalled() for _ in range(2)]
        async with anyio.create_task_group() as tg:
            for client in stalled:
                tg.start_soon(h.app, body_scope("POST", "/v1/jobs", GOOD), client.receive,
                              client.send)  # fmt: skip
            await until(lambda: h.state.body_reads.held == 2)
            third = Stalled()
            with anyio.fail_after(2):
                await h.app(body_scope("POST", "/v1/jobs", GOOD), third.receive, third.send)
            status, headers, problem = third.answer()
            assert (status, problem["code"]) == (429, "too_many_body_reads")
            assert headers[b"retry-after"] == b"5" and third.asked == 0
            theirs = Stalled()
            tg.start_soon(h.app, body_scope("POST", "/v1/jobs", OTHER), theirs.receive,
                          theirs.send)  # fmt: skip
            await until(lambda: h.state.body_reads.held == 3)
            tg.cancel_scope.cancel()
        assert h.state.body_reads.held == 0 and h.state.body_reads_by_key.held("0123abcd") == 0

    _run(scenario)


@contextmanager
def broken_registry_session(delay_s: float) -> Iterator[Session]:
    """A real PostgreSQL session, a little slow to start, on which the key query fails with
    an error that is not "the database is down" (no api_keys table on its search path)."""
    time.sleep(delay_s)
    engine = create_engine(PG_ADMIN_URL, connect_args={"options": "-c search_path=nowhere"})
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def test_a_failed_key_check_answers_its_waiters_with_a_503() -> None:
    """Ten requests present one uncached key; its one check fails with an unexpected
    database error. Before the fix the waiters found neither caller nor error, each started
    a check of its own over the others' entry, and one of them crashed on a KeyError; now
    the first is the 500 its error is, the other nine a 503 `key_check_failed`, one query."""
    fresh = "sk_feedf00d_" + "f" * 32
    opened: list[float] = []

    def sessions() -> AbstractContextManager[Session]:
        opened.append(time.monotonic())
        return broken_registry_session(0.3)

    async def scenario() -> None:
        h = Harness(requests=20, key_sessions=sessions)
        h.release.set()
        codes: list[int] = []
        async with h.client(raise_app_exceptions=False) as client:

            async def get() -> None:
                r = await client.get("/v1/slow", headers=key(fresh))
                codes.append(r.status_code)
                if r.status_code == 503:
                    assert r.json()["code"] == "key_check_failed"
                    assert r.headers["retry-after"] == "2"

            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(get)
        assert sorted(codes) == [500] + [503] * 9, codes
        assert len(opened) == 1
        assert not h.app._flights

    _run(scenario)


def test_a_real_database_error_is_not_mistaken_for_a_bad_key() -> None:
    with pytest.raises(sa_exc.ProgrammingError), broken_registry_session(0) as session:
        from app.services.api_keys import authenticate

        authenticate(session, "sk_feedf00d_" + "f" * 32)


def test_admission_must_fit_in_the_database_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request slot, upload slot and key check may hold a pooled connection: settings
    whose sum is over the pool are refused at startup instead of deadlocking under load."""
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    pool = engine.pool
    assert pool.size() + pool._max_overflow == Settings.db_pool_connections  # type: ignore[attr-defined]
    engine.dispose()
    Settings(max_inflight_requests=24, max_inflight_uploads=4, max_key_checks=2)
    with pytest.raises(ValidationError, match="more than the 30 database connections"):
        Settings(max_inflight_requests=24, max_inflight_uploads=5, max_key_checks=2)
