"""Refuse a request whose declared Content-Length is over its route's body limit, with a
problem+json 413, before any of the body is read. (Bodies without a Content-Length are
counted by FastAPI's per-router max_body_size as they arrive.)"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.problems import PROBLEM_MEDIA_TYPE


class ContentLengthLimit:
    def __init__(self, app: ASGIApp, *, default: int, prefixes: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.prefixes = prefixes

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.prefixes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = Headers(scope=scope).get("content-length")
            limit = self.limit_for(scope["path"])
            if raw is not None and raw.isdigit() and int(raw) > limit:
                await self._reject(scope, send, limit)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _reject(scope: Scope, send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Payload too large",
                "status": 413,
                "detail": f"request body larger than {limit} bytes",
                "instance": scope["path"],
                "code": "payload_too_large",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
