"""Slow clients against the real server (`python -m app serve` on PostgreSQL and Redis), raw
TCP: 40 connections that start an upload and then send nothing take no status read down (and
one key holds at most two upload slots), a body sent where no route takes one is refused
unread, a stalled or trickling body is cut off with a 408 and its connection closed, and a
connection whose request headers never end is closed. Deadlines are shortened through the
environment."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import base_env, create_api_key, free_port, process, wait_ready
from tests.e2e.processes import backing_services, insert_job
from tests.e2e.test_faults import tiny_spec

pytestmark = pytest.mark.e2e
TENANT = "slowloris"
IDLE_S = 2.0  # BODY_IDLE_TIMEOUT_S
GRACE_S = 3.0  # BODY_RATE_GRACE_S (longer than IDLE_S), with a floor of 100 bytes/s
HEADER_S = 2.0  # HTTP_HEADER_TIMEOUT_S
SLOWLORIS = 40  # more than the 24 request slots


@dataclass
class Api:
    port: int
    key: str
    job_id: str
    log: Path


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("slowloris")
    with backing_services(tmp, redis_db=8) as svc:
        port = free_port()
        env = base_env(
            tmp, DATABASE_URL=svc.db_url, REDIS_URL=svc.redis_url, PORT=str(port),
            BODY_IDLE_TIMEOUT_S=str(IDLE_S), BODY_RATE_GRACE_S=str(GRACE_S),
            BODY_MIN_RATE_BYTES_S="100", ADMISSION_WAIT_S="4",
            HTTP_HEADER_TIMEOUT_S=str(HEADER_S), LOG_FORMAT="text",
        )  # fmt: skip
        key = create_api_key(env, TENANT)
        job_id = insert_job(svc.engine, tiny_spec("minilm-l6", steps=4), TENANT)
        log = tmp / "api.log"
        with (
            process([sys.executable, "-m", "app", "serve"], env, log) as proc,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            wait_ready(client, proc, log)
            yield Api(port, key, str(job_id), log)


def stalled_request(
    port: int, path: str, key: str | None, sent: bytes = b"--b\r\n", length: int = 5000
) -> socket.socket:
    """A request whose headers are complete and whose body stops after `sent`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def answer(sock: socket.socket, timeout_s: float) -> bytes:
    """What the server sends until it closes the connection."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data


def timed_get(client: httpx.Client, path: str, **kwargs: object) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = client.get(path, **kwargs)  # type: ignore[arg-type]
    return r.status_code, time.perf_counter() - t0


def test_status_reads_answer_under_40_stalled_uploads(api: Api) -> None:
    """Half the stalled uploads carry a valid key, half none: a valid key's status read and
    /readyz still answer within 1 s each (before the fix: no answer at all)."""
    socks = [
        stalled_request(api.port, "/v1/datasets", api.key if i % 2 else None)
        for i in range(SLOWLORIS)
    ]
    try:
        time.sleep(0.5)  # every one of them has been parsed and is waiting or refused
        with httpx.Client(base_url=f"http://127.0.0.1:{api.port}", timeout=5) as client:
            auth = {"Authorization": f"Bearer {api.key}"}
            status, took = timed_get(client, f"/v1/jobs/{api.job_id}", headers=auth)
            assert status == 200 and took < 1.0, (status, took)
            ready, ready_took = timed_get(client, "/readyz")
            assert ready == 200 and ready_took < 1.0, (ready, ready_took)
            listed, _ = timed_get(client, "/v1/jobs", headers=auth)
            assert listed == 200
            print(f"\nunder {SLOWLORIS} stalled uploads: status read {took * 1000:.1f} ms, "
                  f"/readyz {ready_took * 1000:.1f} ms")  # fmt: skip
        # Every stalled request ends: no key, a 401 at once; the valid key, a 408 once its
        # body is overdue for the two upload slots it may hold, a 429 at once for the rest;
        # the server closes each.
        answers = [answer(s, timeout_s=3 * IDLE_S + 10) for s in socks]
    finally:
        for s in socks:
            s.close()
    codes = [a.split(b" ", 2)[1] for a in answers]
    assert codes[0::2] == [b"401"] * (SLOWLORIS // 2), codes
    keyed = codes[1::2]
    assert keyed.count(b"408") == 2 and keyed.count(b"429") == SLOWLORIS // 2 - 2, codes


def test_bodies_where_no_route_takes_one_are_refused_unread(api: Api) -> None:
    """Without a key, 40 slow bodies (more than the 32 body-read places) sent outside /v1/:
    each is a 404/405 at once with the connection closed, none is read. Before the fix each
    was read in the body-read lane until its deadline (a 408 after IDLE_S; at the old
    1 KiB/s floor a trickle held its place for up to 17 min), so 32 of them blocked every
    JSON request of every key."""
    paths = ["/readyz", "/docs", "/anything", "/metrics"] * 10
    t0 = time.monotonic()
    socks = [stalled_request(api.port, path, None, sent=b"{") for path in paths]
    try:
        answers = [answer(s, timeout_s=IDLE_S + 10) for s in socks]
    finally:
        for s in socks:
            s.close()
    took = time.monotonic() - t0
    codes = {path: a.split(b" ", 2)[1] for path, a in zip(paths, answers, strict=True)}
    assert codes == {"/readyz": b"405", "/docs": b"405", "/anything": b"404",
                     "/metrics": b"405"}, codes  # fmt: skip
    assert all(b"connection: close" in a.lower() for a in answers)
    assert took < IDLE_S - 0.5, took  # answered, not timed out
    with httpx.Client(base_url=f"http://127.0.0.1:{api.port}", timeout=5) as client:
        auth = {"Authorization": f"Bearer {api.key}"}
        status, took_read = timed_get(client, f"/v1/jobs/{api.job_id}", headers=auth)
        assert status == 200 and took_read < 1.0
    print(f"\n{len(paths)} bodies outside /v1/ refused unread in {took * 1000:.0f} ms")


@pytest.mark.parametrize("path", ["/v1/datasets", "/v1/jobs"])
def test_a_stalled_body_is_cut_off_after_the_deadline(api: Api, path: str) -> None:
    """An upload (its own slot) and a JSON submission (read before any slot) alike."""
    sock = stalled_request(api.port, path, api.key)
    t0 = time.monotonic()
    got = answer(sock, timeout_s=IDLE_S + 10)
    took = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert b"connection: close" in got.lower() and b'"code":"request_timeout"' in got
    assert IDLE_S - 0.5 < took < IDLE_S + 3, took


def test_a_trickling_body_is_cut_off_after_the_grace(api: Api) -> None:
    """A byte every 0.3 s never trips the idle timeout, but is under the 100 bytes/s floor."""
    sock = stalled_request(api.port, "/v1/jobs", api.key, sent=b"{")
    t0 = time.monotonic()
    sock.settimeout(0.3)
    got = b""
    while time.monotonic() - t0 < GRACE_S + 5:
        try:
            sock.sendall(b" ")
            got += sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if got.endswith(b"}"):
            break
    sock.close()
    took = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert b"slower than 100 bytes/s" in got
    assert took < GRACE_S + 3, took


def test_a_connection_whose_headers_never_end_is_closed(api: Api) -> None:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    sock.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    t0 = time.monotonic()
    sock.settimeout(0.4)
    closed = False
    while time.monotonic() - t0 < HEADER_S + 5:
        try:
            sock.sendall(b"a")  # a byte at a time: the keep-alive timer never fires
            if sock.recv(65536) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    sock.close()
    took = time.monotonic() - t0
    assert closed and HEADER_S - 0.5 < took < HEADER_S + 3, took
