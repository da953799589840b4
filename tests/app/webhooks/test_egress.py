from __future__ import annotations

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
