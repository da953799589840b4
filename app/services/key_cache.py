"""Recently authenticated API keys, so a hot read path does not query the key table each time.

An entry maps the sha256 of a presented token to its Caller for ``ttl_s`` seconds (0: no
cache). Only successes are kept: an unknown or revoked key always reaches the database. The
cost is that a revocation takes effect in every API process within ``ttl_s`` (the process that
revokes may clear its own entry at once); `Settings.api_key_cache_s` says how long.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from app.tenancy import Caller


class KeyCache:
    def __init__(
        self, ttl_s: float, *, max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Caller]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Caller | None:
        if self.ttl_s <= 0:
            return None
        key = self._key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, caller = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        return caller

    def put(self, token: str, caller: Caller) -> None:
        if self.ttl_s <= 0:
            return
        key = self._key(token)
        self._entries[key] = (self._clock() + self.ttl_s, caller)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, token: str) -> None:
        self._entries.pop(self._key(token), None)

    def __len__(self) -> int:
        return len(self._entries)
