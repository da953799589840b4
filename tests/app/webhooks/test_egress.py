from __future__ import annotations

import json

import pytest

from app.webhooks.egress import EgressRefused, check_url


def fixed(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link_local"),
        ("fe80::1", "link_local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "reserved"),
        ("100.64.0.1", "reserved"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(EgressRefused) as err:
        check_url("https://hooks.example.com/x", resolver=fixed(address))
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:7f00:1:1::5",
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::a00:1",  # local-use NAT64
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::a00:1",
        "2a00:1450::5efe:7f00:1",  # ISATAP interface id carrying 127.0.0.1
    ],
)
def test_embedded_ipv4_forms_of_internal_addresses_are_refused(address: str) -> None:
    with pytest.raises(EgressRefused) as err:
        check_url("https://hooks.example.com/x", resolver=fixed(address))
    assert err.value.reason in ("embedded_ipv4", "private", "loopback"), err.value.reason


@pytest.mark.parametrize("address", ["2002:7f00:1::", "64:ff9b::7f00:1", "::7f00:1"])
def test_embedded_loopback_is_refused_even_when_loopback_is_allowed(address: str) -> None:
    """WEBHOOK_ALLOW=["loopback"] permits 127.0.0.1 and ::1, not a tunnel towards them."""
    with pytest.raises(EgressRefused) as err:
        check_url("http://h.example.com/x", allowed=["loopback", "private"],
                  resolver=fixed(address))  # fmt: skip
    assert err.value.reason == "embedded_ipv4"
    assert "127.0.0.1" in str(err.value)


def test_embedded_public_ipv4_passes_nat64() -> None:
    """DNS64 on an IPv6-only host maps every public IPv4 receiver into 64:ff9b::/96."""
    assert check_url("https://h.example.com/x", resolver=fixed("64:ff9b::5db8:d822"))


def test_public_address_passes_and_allowed_categories_pass() -> None:
    assert check_url("https://hooks.example.com/x", resolver=fixed("93.184.216.34")) == [
        "93.184.216.34"
    ]
    assert check_url("http://localhost:9/x", allowed=["loopback"], resolver=fixed("127.0.0.1"))


def test_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(EgressRefused):
        check_url("https://a.example.com", resolver=fixed("93.184.216.34", "10.0.0.1"))


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "https:///nohost", "https://user:pw@example.com/"]
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused):
        check_url(url, resolver=fixed("93.184.216.34"))


def test_real_resolution_of_localhost_is_loopback() -> None:
    with pytest.raises(EgressRefused) as err:
        check_url("http://localhost:8080/hook")
    assert err.value.reason == "loopback"


@pytest.mark.parametrize(
    ("address", "allowed", "setting"),
    [
        ("127.0.0.1", [], """WEBHOOK_ALLOW='["loopback"]'"""),
        ("10.1.2.3", ["loopback"], """WEBHOOK_ALLOW='["loopback", "private"]'"""),
        ("169.254.169.254", ["private"], """WEBHOOK_ALLOW='["private", "link_local"]'"""),
    ],
)
def test_a_refusal_says_how_the_setting_allows_the_host(
    address: str, allowed: list[str], setting: str
) -> None:
    with pytest.raises(EgressRefused) as err:
        check_url("http://h.example.com/x", allowed=allowed, resolver=fixed(address))
    message = str(err.value)
    assert f"set {setting} to allow" in message
    assert f"(now {json.dumps(allowed)}; any of loopback, private, link_local)" in message


@pytest.mark.parametrize(("address", "reason"), [("0.0.0.0", "reserved"),
                                                 ("2002:7f00:1::", "embedded_ipv4")])  # fmt: skip
def test_a_refusal_no_setting_can_lift_says_so(address: str, reason: str) -> None:
    with pytest.raises(EgressRefused) as err:
        check_url("http://h.example.com/x", allowed=["loopback"], resolver=fixed(address))
    assert err.value.reason == reason
    assert str(err.value).endswith(
        "the WEBHOOK_ALLOW setting can allow loopback, private and link_local hosts only, "
        f"never a {reason} address"
    )
