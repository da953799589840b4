"""The retry schedule of a webhook delivery: exponential backoff with full jitter, bounded
by the number of attempts and by the age of the message."""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def next_attempt(
    created_at: datetime,
    attempts: int,
    now: datetime,
    base_s: float,
    cap_s: float,
    max_attempts: int,
    max_age_s: float,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or None to give up."""
    if attempts >= max_attempts:
        return None
    ceiling = min(cap_s, base_s * 2 ** (attempts - 1)) if attempts >= 1 else base_s
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    when = now + timedelta(seconds=delay)
    if (when - created_at).total_seconds() > max_age_s:
        return None
    return when
