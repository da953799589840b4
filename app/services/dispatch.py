"""Hand a committed job to the broker, and record that it was handed over."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from app.queue import enqueue_compress
from app.repositories import jobs as jobs_repo

log = logging.getLogger("scalpel.dispatch")


def enqueue_and_mark_dispatched(session: Session, job_id: uuid.UUID) -> bool:
    """Runs after the job's commit. A broker that is down leaves the job queued with
    dispatched_at NULL for the outbox to re-dispatch; it never fails the request."""
    try:
        enqueue_compress(job_id)
    except Exception:
        log.warning("broker unreachable; job %s stays undispatched", job_id, exc_info=True)
        return False
    try:
        jobs_repo.mark_dispatched(session, job_id)
        session.commit()
    except Exception:
        session.rollback()
        log.warning("job %s enqueued but dispatched_at not recorded", job_id, exc_info=True)
    return True
