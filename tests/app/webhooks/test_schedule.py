from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from app.webhooks.schedule import next_attempt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_backoff_grows_with_jitter_and_stops() -> None:
    rng = random.Random(0)
    delays = []
    for attempts in range(1, 6):
        when = next_attempt(T0, attempts, T0, 1.0, 60.0, 8, 3600, rng)
        assert when is not None
        delays.append((when - T0).total_seconds())
    for attempts, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 2 ** (attempts - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert next_attempt(T0, 8, T0, 1.0, 60.0, 8, 3600, rng) is None


def test_gives_up_past_the_maximum_age() -> None:
    late = T0 + timedelta(seconds=3590)
    assert next_attempt(T0, 3, late, 10.0, 60.0, 100, 3600, random.Random(1)) is None
