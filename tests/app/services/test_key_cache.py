"""KeyCache: successes for ttl_s on the given clock, bounded, off at 0."""

from __future__ import annotations

import uuid

from app.services.key_cache import KeyCache
from app.tenancy import Caller


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_ttl_seconds() -> None:
    clock = Clock()
    cache = KeyCache(5.0, clock=clock)
    caller = Caller(tenant_id=uuid.uuid4())
    assert cache.get("sk_a_b") is None
    cache.put("sk_a_b", caller)
    assert cache.get("sk_a_b") == caller
    assert cache.get("sk_a_c") is None
    clock.now += 4.9
    assert cache.get("sk_a_b") == caller
    clock.now += 0.2
    assert cache.get("sk_a_b") is None
    assert len(cache) == 0


def test_zero_ttl_caches_nothing_and_the_size_is_bounded() -> None:
    off = KeyCache(0.0)
    off.put("sk_a_b", Caller(tenant_id=uuid.uuid4()))
    assert off.get("sk_a_b") is None
    small = KeyCache(60.0, max_entries=3)
    for i in range(5):
        small.put(f"sk_{i}_x", Caller(tenant_id=uuid.uuid4()))
    assert len(small) == 3
    assert small.get("sk_0_x") is None and small.get("sk_4_x") is not None


def test_forget_drops_an_entry_and_tokens_are_not_kept_in_clear() -> None:
    cache = KeyCache(60.0)
    cache.put("sk_a_secret", Caller(tenant_id=uuid.uuid4()))
    assert all(b"secret" not in k for k in cache._entries)
    cache.forget("sk_a_secret")
    assert cache.get("sk_a_secret") is None
