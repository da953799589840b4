"""Webhook deliveries made straight in the database (the outbox writes them at a job's end)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Job, WebhookDelivery
from app.repositories import webhooks as webhooks_repo


def make_delivery(
    session: Session, job: Job, url: str = "https://example.com/hook"
) -> WebhookDelivery:
    """A pending job.canceled delivery of the job's, committed."""
    delivery = webhooks_repo.add_delivery(
        session, tenant_id=job.tenant_id, job_id=job.id, event_type="job.canceled", url=url,
        payload={"type": "job.canceled", "data": {"job_id": str(job.id)}}, now=utcnow(),
    )  # fmt: skip
    session.commit()
    return delivery
