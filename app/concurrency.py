"""Admission: who may hold one of the API's few request slots, and when.

Sync route handlers and dependencies run on a pool of threads, and a request holds its
database connection from its first query until its session closes. Without a bound, more
requests can pass authentication than the pool has connections, their threads block waiting
for a connection, and the requests that hold connections wait for a free thread: nothing moves
until the pool times out. So requests take a slot first (the rest wait without holding a thread
or a connection, at most ``admission_wait_s``, then get a 503 ``overloaded``), and the slot is
released as soon as the response starts, so long downloads and event streams, whose sessions
are already closed, do not count against it.

A slot is worth something, so nobody gets one for free. In order, for each request:

1. ``/healthz`` (liveness) passes straight through: it must answer when everything is stuck.
2. A request under ``/v1/`` is authenticated first: a key the process trusts already (the key
   cache) costs nothing; otherwise one short query on its own session (from the session
   factory the app gives admission), on the threadpool, in a lane of its own
   (``max_key_checks`` at once). A missing, unknown or revoked key is a 401 at once, and a
   request refused here never holds a slot. The caller is handed to the route
   (``request.state.caller``, and the key's identity as ``request.state.api_key``), so the
   route does not check again. A few paths outside ``/v1/`` (``/metrics``) take a key when
   one is presented: it is checked here the same way, and the route decides what it needs.
3. A request with a body for which no route takes one (any path outside ``/v1/`` today, an
   unknown path, a method the path does not take) is a 404 or 405 with ``Connection: close``
   before a byte of the body is read: only the routes that take a body, behind a key, have
   one read.
4. Uploads (``POST /v1/models``, ``POST /v1/datasets``) take a slot from their own small pool
   (``max_inflight_uploads``): their bodies are large and arrive at the client's pace, so
   they can never starve status reads, which take slots from the main pool
   (``max_inflight_requests``) like every other request (the docs, the dashboard's static
   files, ``/readyz`` and ``/metrics`` included, which need no key here).
5. Any other request with a body (JSON, at most ``max_body_bytes``) has its body read first,
   in a lane of its own (``max_body_reads`` at once, so the memory is bounded), and only then
   takes a slot: reading needs no thread and no connection, so a slow body never holds one.

One API key holds at most ``per_key`` upload slots and ``per_key`` body reads at once (held
or waiting); one more is a 429 with ``Retry-After``, so a single key cannot fill either lane.

Every body is read under ``app.body_deadline`` (no chunk for a while, or an average under the
floor, which also bounds the whole body's time by its length, ends the request with a 408), so
a slot held by a slow upload is given back within bounded time. Each lane
(``app.admission_state``) remembers when it last made progress; ``/healthz`` reports a lane
that is full, wanted and has freed nothing for ``liveness_stall_s``
(``app.services.health.liveness``).
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable, Mapping

import anyio
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.admission_state import CALLER_STATE_KEY, KEY_STATE_KEY, AdmissionState, KeySlots, Lane
from app.body_deadline import has_body
from app.deps import KeySessions, check_key, key_identity, presented_token, refuse_unusable
from app.errors import (
    ApiError,
    DatabaseUnavailable,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
)
from app.problems import database_down, problem_response
from app.services.key_cache import KeyCache
from app.tenancy import Caller

log = logging.getLogger("scalpel.admission")
UPLOAD_PATHS = ("/v1/models", "/v1/datasets")
PER_KEY_RETRY_AFTER_S = 5
# path -> does this presented token need checking as an API key here? (False: the route
# knows it, e.g. the metrics token, or the path is open to anyone)
KeyOptional = Mapping[str, Callable[[str], bool]]


class _Flight:
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.caller: Caller | None = None
        self.error: ApiError | None = None


def is_protected(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def is_upload(scope: Scope) -> bool:
    return scope["method"] == "POST" and str(scope["path"]).rstrip("/") in UPLOAD_PATHS


def route_match(router: Router, scope: Scope) -> Match:
    """How well the app's routes match this request: FULL (path and method), PARTIAL (the
    path, another method) or NONE. A path that differs only by its trailing slash counts as
    the route's (the router redirects it)."""
    path = str(scope["path"])
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    best = Match.NONE
    for candidate in (scope, {**scope, "path": other}):
        for route in router.routes:
            match, _ = route.matches(candidate)
            if match is Match.FULL:
                return match
            if match is Match.PARTIAL:
                best = match
    return best


class Admission:
    def __init__(
        self, app: ASGIApp, *, state: AdmissionState, key_cache: KeyCache,
        key_sessions: KeySessions, max_body_bytes: int, router: Router | None = None,
        key_optional: KeyOptional | None = None, exempt: tuple[str, ...] = ("/healthz",),
    ) -> None:  # fmt: skip
        self.app = app
        self.state = state
        self.key_cache = key_cache
        self.key_sessions = key_sessions
        self.max_body_bytes = max_body_bytes
        self.router = router  # None: the routes of the app the request is for (scope["app"])
        self.key_optional = dict(key_optional or {})
        self.exempt = exempt
        # Keys being checked now (sha256): when a cached key expires under load, one query
        # answers every request that presents it, not one query each.
        self._flights: dict[bytes, _Flight] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        try:
            key = await self._admit_caller(scope)
            body = has_body(Headers(scope=scope))
            if body:
                self._refuse_unroutable_body(scope)
        except ApiError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        upload = is_upload(scope)
        if body and not upload:
            try:
                read = await self._read_body(receive, key)
            except ApiError as exc:
                await self._refuse(scope, receive, send, exc)
                return
            if read is None:
                return  # the client left, or app.body_deadline cut it off (and answers 408)
            receive = read
        lane = self.state.uploads if upload else self.state.requests
        key_release = None
        if upload and key is not None:
            by_key = self.state.uploads_by_key
            key_release = by_key.take(key)
            if key_release is None:
                await self._refuse(scope, receive, send, over_key_share("upload", by_key))
                return
        if not await lane.acquire():
            if key_release is not None:
                key_release()
            await self._refuse(scope, receive, send, overloaded(lane))
            return
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                lane.release()
                if key_release is not None:
                    key_release()

        async def release_on_start(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, release_on_start)
        finally:
            release()

    async def _admit_caller(self, scope: Scope) -> str | None:
        """Authenticate when the path needs a key (or takes one, and one was presented); the
        caller and its key's identity go on the request's state. The key's identity, or None."""
        path = str(scope["path"])
        token = presented_token(Headers(scope=scope))
        if not is_protected(path):
            wants = self.key_optional.get(path)
            if wants is None or token is None or not wants(token):
                return None
        caller = await self._authenticate(scope, token)
        key = key_identity(token or "")
        state = scope.setdefault("state", {})
        state[CALLER_STATE_KEY], state[KEY_STATE_KEY] = caller, key
        return key

    def _refuse_unroutable_body(self, scope: Scope) -> None:
        """404 or 405 for a body no route takes, before any of it is read."""
        router = self.router or getattr(scope.get("app"), "router", None)
        if not isinstance(router, Router):
            return
        match = route_match(router, scope)
        if match is Match.FULL:
            return
        what = f"{scope['method']} {scope['path']}"
        if match is Match.PARTIAL:
            raise MethodNotAllowed(f"{what}: the path does not take this method")
        raise NotFound(f"no route for {what}")

    async def _read_body(self, receive: Receive, key: str | None) -> Receive | None:
        """The whole body, read in the body-reads lane; a receive that replays it (None: the
        client disconnected first)."""
        key_release = None
        if key is not None:
            by_key = self.state.body_reads_by_key
            key_release = by_key.take(key)
            if key_release is None:
                raise over_key_share("body read", by_key)
        lane = self.state.body_reads
        try:
            if not await lane.acquire():
                raise overloaded(lane)
            try:
                chunks = await self._chunks(receive)
            finally:
                lane.release()
        finally:
            if key_release is not None:
                key_release()
        if chunks is None:
            return None
        body: Message | None = {"type": "http.request", "body": b"".join(chunks),
                                "more_body": False}  # fmt: skip

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                message, body = body, None
                return message
            return await receive()

        return replay

    async def _chunks(self, receive: Receive) -> list[bytes] | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"request body larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks

    async def _authenticate(self, scope: Scope, token: str | None) -> Caller:
        if token and (caller := self.key_cache.get(token)) is not None:
            return caller
        token = refuse_unusable(token)  # no key, or not shaped like one: no query
        digest = hashlib.sha256(token.encode()).digest()
        # The same key is being checked: share that answer. A check that ended without one
        # (its request went away) leaves the next waiter to check again.
        while (flight := self._flights.get(digest)) is not None:
            await flight.done.wait()
            if flight.caller is not None:
                return flight.caller
            if flight.error is not None:
                raise copy.copy(flight.error)  # each request its own (tracebacks differ)
        flight = self._flights[digest] = _Flight()
        try:
            flight.caller = await self._check(token)
            return flight.caller
        except ApiError as exc:
            flight.error = exc
            raise
        except Exception:
            # Unexpected (a 500 for this request, logged as such); the requests waiting on
            # it get a 503 rather than each trying the same broken check.
            flight.error = key_check_failed()
            raise
        finally:
            if self._flights.get(digest) is flight:
                del self._flights[digest]
            flight.done.set()

    async def _check(self, token: str) -> Caller:
        """One query, in the key-checks lane; the key is cached when it is good."""
        lane = self.state.key_checks
        if not await lane.acquire():
            raise overloaded(lane)
        try:
            caller = await run_in_threadpool(check_key, self.key_sessions, token)
        except Exception as exc:
            if not database_down(exc):
                raise
            log.warning("database unavailable for a key check: %s", type(exc).__name__)
            raise DatabaseUnavailable(
                "the database cannot be reached; nothing was changed, retry later",
                headers={"Retry-After": "5"},
            ) from exc
        finally:
            lane.release()
        self.key_cache.put(token, caller)
        return caller

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: ApiError) -> None:
        """The problem response, before any of the body is read; a request that has a body
        gets `Connection: close`, so what it still sends is never parsed."""
        headers = dict(exc.headers or {})
        if has_body(Headers(scope=scope)):
            headers["Connection"] = "close"
        if not isinstance(exc, Unauthenticated):
            log.warning("refused %s %s: %s", scope["method"], scope["path"], exc.code)
        response = problem_response(
            Request(scope), status=exc.status, code=exc.code, title=exc.title,
            detail=exc.detail, field=exc.field, errors=exc.errors, headers=headers,
        )  # fmt: skip
        await response(scope, receive, send)


def overloaded(lane: Lane) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"the server is busy: no {lane.name.replace('_', ' ')} slot freed in {lane.wait_s:g} s",
        code="overloaded", headers={"Retry-After": "2"},
    )  # fmt: skip


def over_key_share(what: str, slots: KeySlots) -> TooManyRequests:
    """429: the key already holds its share of uploads (or body reads) in this process."""
    return TooManyRequests(
        f"this API key already has {slots.per_key} {what}s in progress (per API process); "
        "retry once one has finished",
        code=f"too_many_{what.replace(' ', '_')}s",
        headers={"Retry-After": str(PER_KEY_RETRY_AFTER_S)},
    )


def key_check_failed() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the API key could not be checked; retry later", code="key_check_failed",
        headers={"Retry-After": "2"},
    )  # fmt: skip
