"""Where a webhook may be sent: never to private, loopback, link-local or otherwise
non-public addresses unless the operator allows them. The host is resolved once and every
address it resolves to is checked (a name that resolves to both a public and a private
address is refused); the delivery then connects to those checked addresses only
(app.webhooks.pinned), so a name that answers differently the second time (DNS rebinding)
reaches nothing new.

IPv6 forms that carry an IPv4 address (IPv4-mapped and IPv4-compatible, 6to4 2002::/16,
Teredo 2001::/32, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, ISATAP interface identifiers) are
judged by the IPv4 address they carry: 2002:7f00:1:: is loopback by another name."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
ISATAP_IDS = (0x00005EFE, 0x02005EFE)


# The non-public address categories the WEBHOOK_ALLOW setting can permit.
ALLOWABLE = ("loopback", "private", "link_local")


class EgressRefused(ValueError):
    """A webhook URL the service will not call; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def resolve(host: str, port: int) -> list[str]:
    """Every address of ``host``, in the resolver's order (the order a connection tries)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, with the form's name, or None."""
    if addr.ipv4_mapped is not None:
        return "IPv4-mapped", addr.ipv4_mapped
    if addr.sixtofour is not None:
        return "6to4", addr.sixtofour
    if addr.teredo is not None:
        return "Teredo", addr.teredo[1]
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in NAT64 or addr in NAT64_LOCAL:
        return "NAT64", low32
    if addr in IPV4_COMPATIBLE and int(addr) > 1:
        return "IPv4-compatible", low32
    if (int(addr) >> 32) & 0xFFFFFFFF in ISATAP_IDS:
        return "ISATAP", low32
    return None


def _plain_category(addr: Address) -> str | None:
    if addr.is_unspecified:
        return "reserved"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link_local"
    if addr.is_private:
        return "private"
    if addr.is_multicast or addr.is_reserved or not addr.is_global:
        return "reserved"
    return None


def category(addr: Address) -> tuple[str | None, str]:
    """The address's non-public category (None when public) and how it was judged."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = embedded_ipv4(addr)
        if embedded is not None:
            form, inner = embedded
            inner_category = _plain_category(inner)
            if inner_category is not None:
                if form == "IPv4-mapped":  # the very same IPv4 host
                    return inner_category, f"{inner}"
                # a tunnel or translator towards it: never allowed by WEBHOOK_ALLOW
                return "embedded_ipv4", f"{form} form of {inner_category} {inner}"
            if form == "NAT64" and addr in NAT64:
                return None, f"NAT64 form of public {inner}"  # DNS64 on an IPv6-only host
    return _plain_category(addr), str(addr)


def allow_hint(kind: str, permitted: Iterable[str]) -> str:
    """How the operator allows an address of this category, or that no setting can."""
    if kind not in ALLOWABLE:
        return (
            "the WEBHOOK_ALLOW setting can allow loopback, private and link_local hosts only, "
            f"never a {kind} address"
        )
    now = [c for c in ALLOWABLE if c in set(permitted)]
    wanted = ", ".join(f'"{c}"' for c in ALLOWABLE if c in {*now, kind})
    return (
        "the WEBHOOK_ALLOW setting lists the non-public address categories webhooks may reach "
        f"(now {json.dumps(now)}; any of loopback, private, link_local): set "
        f"WEBHOOK_ALLOW='[{wanted}]' to allow {kind} hosts"
    )


def check_url(
    url: str,
    allowed: Iterable[str] = (),
    resolver: Resolver = resolve,
) -> list[str]:
    """Validate a webhook URL and return the addresses it may be sent to (connect to these,
    never to a fresh resolution). ``allowed`` holds the categories the operator permits
    (``loopback``, ``private``, ``link_local``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise EgressRefused("scheme", f"webhook URL scheme must be http or https: {url!r}")
    if not parts.hostname:
        raise EgressRefused("host", f"webhook URL has no host: {url!r}")
    if parts.username or parts.password:
        raise EgressRefused("credentials", "webhook URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise EgressRefused("port", f"webhook URL has a bad port: {url!r}") from exc
    try:
        addresses = resolver(parts.hostname, port)
    except (OSError, UnicodeError) as exc:
        raise EgressRefused("resolve", f"cannot resolve {parts.hostname!r}: {exc}") from exc
    if not addresses:
        raise EgressRefused("resolve", f"{parts.hostname!r} resolves to no address")
    permitted = set(allowed)
    for text in addresses:
        try:
            addr = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError as exc:
            raise EgressRefused("resolve", f"{parts.hostname!r}: bad address {text!r}") from exc
        kind, judged = category(addr)
        if kind is not None and kind not in permitted:
            shown = text if judged == str(addr) else f"{text}: {judged}"
            raise EgressRefused(
                kind,
                f"{parts.hostname!r} resolves to a {kind} address ({shown}); "
                + allow_hint(kind, permitted),
            )
    return addresses
