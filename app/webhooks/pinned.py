"""An httpx transport that connects only to addresses the egress check vetted.

The caller passes the checked addresses with each request (``extensions={PIN: (...)}``);
the transport opens its TCP connection to one of them and never resolves the URL's host
again, so DNS rebinding (a public answer for the check, 127.0.0.1 for the connection) gets
nowhere. Everything else comes from the URL as usual: the Host header, and for https the SNI
name and the certificate check against the hostname. A request without vetted addresses is
refused before any connection."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import httpcore
import httpx

PIN = "scalpel.pinned_addresses"


class Unpinned(httpx.ConnectError):
    """A request reached the transport without vetted addresses."""


class PinnedBackend(httpcore.NetworkBackend):
    """Connects to ``addresses`` in turn (whatever host it is asked for), the first that
    answers wins."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = tuple(addresses)
        self.connected: list[str] = []
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception = httpcore.ConnectError(f"no vetted address for {host!r}")
        for address in self.addresses:
            try:
                stream = self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            self.connected.append(address)
            return stream
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never a webhook target")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _OnePinnedConnection(httpx.HTTPTransport):
    """httpx's own transport (request mapping, error mapping) over a pool whose network
    backend is pinned; used for one request, closed with its response."""

    def __init__(self, ssl_context: ssl.SSLContext, backend: PinnedBackend) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, max_connections=1, max_keepalive_connections=0,
            retries=0, network_backend=backend,
        )  # fmt: skip


class _ClosingStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, transport: httpx.BaseTransport) -> None:
        self._inner = inner
        self._transport = transport

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._transport.close()


class PinnedTransport(httpx.BaseTransport):
    """Every request opens a fresh connection to the addresses in its ``PIN`` extension."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        if isinstance(verify, ssl.SSLContext):
            self._ssl = verify
        else:
            self._ssl = httpx.create_ssl_context(verify=verify, trust_env=False)
        self.backends: list[PinnedBackend] = []  # the last few, for tests and logs

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        addresses = request.extensions.get(PIN)
        if not addresses:
            raise Unpinned("refusing a webhook connection without vetted addresses",
                           request=request)  # fmt: skip
        backend = PinnedBackend(addresses)
        self.backends = [*self.backends[-9:], backend]
        transport = _OnePinnedConnection(self._ssl, backend)
        try:
            response = transport.handle_request(request)
        except BaseException:
            transport.close()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            status_code=response.status_code, headers=response.headers,
            stream=_ClosingStream(response.stream, transport), extensions=response.extensions,
        )  # fmt: skip


def pinned_client(timeout_s: float, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """The client webhook deliveries use: no proxies from the environment, no redirects,
    connections only to the addresses each request carries."""
    return httpx.Client(
        transport=PinnedTransport(verify), timeout=timeout_s, trust_env=False,
        follow_redirects=False,
    )  # fmt: skip
