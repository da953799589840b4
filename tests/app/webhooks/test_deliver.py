"""Delivery attempts against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.webhooks.deliver import attempt
from app.webhooks.pinned import pinned_client
from app.webhooks.signing import new_secret, verify


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state.received.append((dict(self.headers.items()), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_fails_twice_then_succeeds_with_a_valid_signature(
    receiver: tuple[Receiver, str],
) -> None:
    state, url = receiver
    state.statuses = [500, 503]
    secret = new_secret()
    body = json.dumps({"type": "job.succeeded"}).encode()
    results = []
    with pinned_client(5) as client:
        for _ in range(3):
            results.append(attempt(client, url, "msg_1", body, [secret], allowed=["loopback"]))
    assert [r.status_code for r in results] == [500, 503, 200]
    assert [r.retryable for r in results] == [True, True, False]
    assert results[-1].ok
    for headers, got in state.received:
        verify(secret, headers, got)
        assert got == body
        assert headers["webhook-id"] == "msg_1"


def test_loopback_refused_unless_allowed(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    with pinned_client(5) as client:
        result = attempt(client, url, "msg_2", b"{}", [new_secret()])
    assert not result.ok and not result.retryable
    assert result.error is not None and "loopback" in result.error
    assert state.received == []


def test_client_error_is_final_and_connection_error_retryable(
    receiver: tuple[Receiver, str],
) -> None:
    state, url = receiver
    state.statuses = [410]
    with pinned_client(5) as client:
        gone = attempt(client, url, "m", b"{}", [new_secret()], allowed=["loopback"])
        closed = attempt(
            client, "http://127.0.0.1:9/hook", "m", b"{}", [new_secret()], allowed=["loopback"]
        )
    assert gone.status_code == 410 and not gone.retryable
    assert closed.status_code is None and closed.retryable
