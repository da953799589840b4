"""Per-request log context: a request id (X-Request-ID, generated when absent or unusable,
echoed on the response) and the job id of /v1/jobs/{id}... paths; one access line each."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logging import log_context

log = logging.getLogger("scalpel.access")
JOB_PATH = re.compile(r"^/v1/jobs/([0-9a-fA-F-]{36})(?:/|$)")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        path = str(scope["path"])
        match = JOB_PATH.match(path)
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=request_id, job_id=match.group(1) if match else None):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                log.info(
                    "%s %s %d %.1fms", scope["method"], path, status,
                    (time.perf_counter() - t0) * 1000,
                )  # fmt: skip
