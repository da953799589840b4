"""PostgreSQL advisory lock keys shared by the worker (held for a whole run) and the reaper
(which takes it briefly to learn that no live worker holds the job)."""

from __future__ import annotations

import hashlib
import uuid


def advisory_key(job_id: uuid.UUID) -> int:
    """A signed 64-bit key for pg_try_advisory_lock, stable per job."""
    digest = hashlib.sha256(b"scalpel.job:" + job_id.bytes).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
