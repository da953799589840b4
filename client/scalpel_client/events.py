"""A job's events live: `GET /v1/jobs/{id}/events` with `Accept: text/event-stream`.

The API sends each event as `id: <n>` / `event: <kind>` / `data: <event JSON>`, a comment on
every heartbeat of silence, and a last `event: end` whose data is the finished job (`{}` when
the job is gone). It closes a stream after a while without an end; the client then reconnects
with `Last-Event-ID`, so no event is lost or repeated. What the sync and async streams share
is here: the text/event-stream parser and where a stream stands across its connections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from scalpel_client.base import job_path, typed
from scalpel_client.errors import ScalpelAPIError, ScalpelConnectionError, ScalpelError
from scalpel_client.retry import RetryPolicy, retry_status
from scalpel_client.types import Job, JobEvent

SSE_MEDIA_TYPE = "text/event-stream"
END = "end"


@dataclass(frozen=True)
class SSEMessage:
    event: str
    data: str
    id: str | None


class SSEParser:
    """The text/event-stream format (WHATWG HTML, server-sent events), one line at a time."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self.comments = 0
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SSEMessage | None:
        """A message once a blank line ends it; None for every other line."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEMessage | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEMessage(event or "message", "\n".join(data), self.last_id)


class Follow:
    """Where one job's event stream stands: the last event id seen (resumed from), the finished
    job once `end` came, and the failures in a row (connections that broke or gave nothing)."""

    def __init__(self, job_id: str, after: int | None, retry: RetryPolicy) -> None:
        self.path = job_path(job_id, "events")
        self.after = after
        self.retry = retry
        self.job: Job | None = None
        self.done = False
        self.failures = 0
        self._retry_ms: int | None = None
        self._refusal: httpx.Response | None = None
        self._parser = SSEParser()
        self._got_any = False

    def headers(self) -> dict[str, str]:
        headers = {"Accept": SSE_MEDIA_TYPE, "Cache-Control": "no-cache"}
        if self.after is not None:
            headers["Last-Event-ID"] = str(self.after)
        return headers

    def refused(self, response: httpx.Response) -> None:
        """An error status (body read): retried when 502/503/504 and attempts remain."""
        if self.failures + 1 < self.retry.attempts and retry_status(response, True):
            self.failures += 1
            self._refusal = response
            return
        raise ScalpelAPIError.from_response(response)

    def opened(self, response: httpx.Response) -> None:
        media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != SSE_MEDIA_TYPE:
            got = media or "no content type"
            raise ScalpelError(f"the API answered {got}, not an event stream")
        self._parser = SSEParser()
        self._got_any = False
        self._refusal = None

    def line(self, line: str) -> JobEvent | None:
        """One line of the stream: the event it completes, if any."""
        message = self._parser.feed(line)
        if self._parser.retry_ms is not None:
            self._retry_ms = self._parser.retry_ms
        if message is not None or self._parser.comments:
            self._got_any = True  # a sign of life: the failures in a row start over
            self.failures = 0
        if message is None:
            return None
        if message.event == END:
            body = _object(message.data)
            self.job = typed(body, Job) if body else None
            self.done = True
            return None
        event = typed(_object(message.data), JobEvent)
        self.after = event["id"]
        return event

    def closed(self) -> None:
        """The server ended the stream without `end`: a failure only if it sent nothing at all
        (a stream closed after its time limit has sent heartbeats at least)."""
        if not self._got_any:
            self.failures += 1
            if self.failures >= self.retry.attempts:
                raise ScalpelError(f"the event stream of {self.path} keeps closing empty")

    def broke(self, method: str, url: str, exc: httpx.TransportError) -> None:
        self.failures += 1
        if self.failures >= self.retry.attempts:
            raise ScalpelConnectionError(method, url, exc) from exc

    def delay(self) -> float:
        """Seconds to wait before connecting again."""
        if self.failures:
            return self.retry.delay(self.failures, self._refusal)
        if self._retry_ms is not None:
            return min(self._retry_ms / 1000, self.retry.max_backoff)
        return self.retry.backoff


def _object(data: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ScalpelError("an event stream message that is not JSON") from exc
    if not isinstance(body, dict):
        raise ScalpelError(f"an event stream message holding {type(body).__name__}")
    return body
