"""Where a webhook may be sent: never to private, loopback, link-local or otherwise
non-public addresses unless the operator allows them. The host is resolved once and every
address it resolves to is checked (a name that resolves to both a public and a private
address is refused)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]


class EgressRefused(ValueError):
    """A webhook URL the service will not call; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _category(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_unspecified:
        return "reserved"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link_local"
    if addr.is_private:
        return "private"
    if addr.is_multicast or addr.is_reserved or addr.is_unspecified or not addr.is_global:
        return "reserved"
    return None


def check_url(
    url: str,
    allowed: Iterable[str] = (),
    resolver: Resolver = resolve,
) -> list[str]:
    """Validate a webhook URL and return the addresses it may be sent to. ``allowed`` holds
    the categories the operator permits (``loopback``, ``private``, ``link_local``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise EgressRefused("scheme", f"webhook URL scheme must be http or https: {url!r}")
    if not parts.hostname:
        raise EgressRefused("host", f"webhook URL has no host: {url!r}")
    if parts.username or parts.password:
        raise EgressRefused("credentials", "webhook URL must not carry credentials")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolver(parts.hostname, port)
    except OSError as exc:
        raise EgressRefused("resolve", f"cannot resolve {parts.hostname!r}: {exc}") from exc
    if not addresses:
        raise EgressRefused("resolve", f"{parts.hostname!r} resolves to no address")
    permitted = set(allowed)
    for text in addresses:
        category = _category(ipaddress.ip_address(text.split("%", 1)[0]))
        if category is not None and category not in permitted:
            raise EgressRefused(
                category, f"{parts.hostname!r} resolves to a {category} address ({text})"
            )
    return addresses
