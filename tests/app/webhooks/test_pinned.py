"""DNS rebinding against a real receiver on 127.0.0.1: a name that answers a public address
to the egress check and 127.0.0.1 to the connection never reaches the receiver, because the
delivery connects to the checked address only; a legitimately pinned connection keeps the
hostname for the Host header, SNI and the certificate check."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.services.webhook_dispatch import make_client
from app.settings import Settings
from app.webhooks.deliver import attempt
from app.webhooks.pinned import PIN, PinnedTransport, Unpinned, pinned_client
from app.webhooks.signing import new_secret

PUBLIC = "93.184.216.34"
REAL_GETADDRINFO = socket.getaddrinfo


@dataclass
class Receiver:
    port: int
    requests: list[dict[str, str]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)


def serve(context: ssl.SSLContext | None = None) -> tuple[Receiver, Callable[[], None]]:
    state = Receiver(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            state.requests.append(dict(self.headers.items()))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        context.sni_callback = lambda sock, name, ctx: state.sni.append(name)  # type: ignore[assignment,misc]
        server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return state, stop


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state, stop = serve()
    yield state
    stop()


def answers(host: str, sequence: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The system resolver answers ``host`` with sequence[0], then sequence[1], ... (the last
    one from then on); other names resolve as usual. Returns the log of answers given."""
    given: list[str] = []

    def getaddrinfo(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != host:
            return REAL_GETADDRINFO(name, port, *args, **kwargs)
        address = sequence[min(len(given), len(sequence) - 1)]
        given.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return given


def test_rebinding_never_reaches_the_internal_receiver(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://rebind.test:{receiver.port}/hook"
    # Control: without pinning, the second resolution (the connection's) lands on 127.0.0.1.
    given = answers("rebind.test", [PUBLIC, "127.0.0.1"], monkeypatch)
    with httpx.Client(timeout=2, trust_env=False) as unpinned:
        assert attempt(unpinned, url, "msg_r0", b"{}", [new_secret()]).ok
    assert len(receiver.requests) == 1 and given == [PUBLIC, "127.0.0.1"]

    receiver.requests.clear()
    given = answers("rebind.test", [PUBLIC, "127.0.0.1"], monkeypatch)
    with make_client(Settings(webhook_timeout_s=2)) as client:
        first = attempt(client, url, "msg_r1", b"{}", [new_secret()])
        second = attempt(client, url, "msg_r1", b"{}", [new_secret()])
        transport = client._transport
    assert isinstance(transport, PinnedTransport)
    assert receiver.requests == []
    # The first attempt connected to the vetted public address only (unreachable from here
    # or not our receiver), with no second lookup; the second attempt's check saw 127.0.0.1.
    assert [b.connected for b in transport.backends] in ([[]], [[PUBLIC]])
    assert transport.backends[0].addresses == (PUBLIC,)
    assert not first.ok and first.retryable, first
    assert given == [PUBLIC, "127.0.0.1"]
    assert not second.ok and not second.retryable
    assert second.error is not None and second.error.startswith("refused (loopback)")


def test_pinned_connection_keeps_the_hostname_in_host(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hooks.test has no DNS at all: the request only works because it goes to the vetted
    127.0.0.1, and the receiver still sees the name."""
    url = f"http://hooks.test:{receiver.port}/hook"
    with pinned_client(2) as client:
        result = attempt(client, url, "msg_h", b"{}", [new_secret()], allowed=["loopback"],
                         resolver=lambda _h, _p: ["127.0.0.1"])  # fmt: skip
    assert result.ok, result
    [headers] = receiver.requests
    assert headers["Host"] == f"hooks.test:{receiver.port}"


def test_a_request_without_vetted_addresses_is_refused(receiver: Receiver) -> None:
    with pinned_client(2) as client, pytest.raises(Unpinned):
        client.post(f"http://127.0.0.1:{receiver.port}/hook", content=b"{}")
    assert receiver.requests == []


def test_unreachable_first_address_falls_back_to_the_next_vetted_one(receiver: Receiver) -> None:
    with pinned_client(2) as client:
        r = client.post(f"http://hooks.test:{receiver.port}/hook", content=b"{}",
                        extensions={PIN: ("127.0.0.2", "127.0.0.1")})  # fmt: skip
    # 127.0.0.2 refuses (nothing listens there): the next vetted address answers
    assert r.status_code == 200 and len(receiver.requests) == 1


def self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


@pytest.fixture
def tls_receiver(tmp_path: Any) -> Iterator[tuple[Receiver, ssl.SSLContext]]:
    cert, key = self_signed("hooks.test")
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    state, stop = serve(server_ctx)
    trust = ssl.create_default_context(cadata=cert.decode())
    yield state, trust
    stop()


def test_https_pinning_uses_the_hostname_for_sni_and_the_certificate(
    tls_receiver: tuple[Receiver, ssl.SSLContext],
) -> None:
    state, trust = tls_receiver
    loopback = lambda _h, _p: ["127.0.0.1"]  # noqa: E731
    with pinned_client(5, verify=trust) as client:
        ok = attempt(client, f"https://hooks.test:{state.port}/hook", "msg_s", b"{}",
                     [new_secret()], allowed=["loopback"], resolver=loopback)  # fmt: skip
        # the same address under another name: the certificate does not match, refused
        wrong = attempt(client, f"https://other.test:{state.port}/hook", "msg_s", b"{}",
                        [new_secret()], allowed=["loopback"], resolver=loopback)  # fmt: skip
    assert ok.ok, ok
    assert state.sni[0] == "hooks.test"
    assert state.requests[0]["Host"] == f"hooks.test:{state.port}"
    assert not wrong.ok and wrong.error is not None and "CERTIFICATE_VERIFY_FAILED" in wrong.error
    assert len(state.requests) == 1
