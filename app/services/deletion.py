"""DELETE of a job, an uploaded model or an uploaded data set: the caller's own (another
tenant's is a 404, like one that does not exist; an admin may delete any).

A job is deleted only once it has finished (succeeded, failed or canceled): a queued or
running one is a 409 `job_active` (cancel it first), and so is one with a webhook delivery
still to be sent (pending, being sent or waiting for its retry: 409 `webhook_pending`, with
when to try again), lest the deletion take the job's `job.succeeded` with it. Its row goes
with its events, artifacts and webhook deliveries (sent or failed for good, and the
idempotency records that would replay its id), then its artifacts' files leave the store
and its checkpoints and scratch leave the work folder. A model or data set is deleted only while no
queued or running job uses it (409 `model_in_use` / `dataset_in_use`, naming the job); its
file then leaves the store, and the finished jobs that used it keep their records.

Each deletion locks its row first (FOR UPDATE, as a cancel does), so of two deletions of
one row the second finds nothing (404), and a submission naming a model or data set is
either seen by the deletion (409) or finds it gone (404): see app.repositories.uploads.
Files go only after the commit, and only those nothing else names or has put again
(app.services.store_release); what is left is the sweeper's."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import TERMINAL_STATUSES, Job, WebhookDelivery
from app.db.session import after_commit
from app.errors import Conflict, NotFound
from app.repositories import artifacts as artifacts_repo
from app.repositories import idempotency as idempotency_repo
from app.repositories import jobs as jobs_repo
from app.repositories import uploads as uploads_repo
from app.repositories import webhooks as webhooks_repo
from app.services import jobs as jobs_service
from app.services.store_release import Released, release, remove_job_folders
from app.services.webhook_outbox import rfc3339
from app.settings import Settings
from app.stores import get_store
from app.tenancy import Caller

log = logging.getLogger("scalpel.deletion")


def _after_commit_release(
    session: Session, settings: Settings, released: list[Released], job_id: uuid.UUID | None
) -> None:
    """Once the rows are gone for good: their files, and the job's folders. Never fails the
    request (its deletion is committed); whatever is left is the sweeper's."""

    def run() -> None:
        try:
            release(session, get_store(settings), released)
            if job_id is not None:
                remove_job_folders(settings.work_dir, job_id)
        except Exception:
            log.warning("cleanup after a deletion failed; the sweeper will", exc_info=True)

    after_commit(session, run)


def delete_job(session: Session, settings: Settings, raw_id: str, caller: Caller) -> None:
    job = jobs_service.get(session, raw_id, caller, for_update=True)
    if job.status not in TERMINAL_STATUSES:
        then = (
            "its cancel is under way: delete it once it has stopped"
            if job.cancel_requested
            else f"cancel it first (POST /v1/jobs/{job.id}/cancel), then delete it once it "
            "has stopped"
        )
        raise Conflict(
            f"job {job.id} is {job.status}: only a finished job (succeeded, failed or "
            f"canceled) can be deleted; {then}", code="job_active",
        )  # fmt: skip
    _refuse_unsent_webhooks(session, settings, job)
    released = [Released(a.storage_key, a.created_at)
                for a in artifacts_repo.for_job(session, job.id)]  # fmt: skip
    job_id = job.id
    idempotency_repo.forget_resource(session, job.tenant_id, job_id)
    jobs_repo.delete_job(session, job_id)
    _after_commit_release(session, settings, released, job_id)


def _refuse_unsent_webhooks(session: Session, settings: Settings, job: Job) -> None:
    """409 webhook_pending while one of the job's deliveries is still to be sent. They are
    locked until the deletion ends, so a redelivery waits for it (then finds none)."""
    pending = [d for d in webhooks_repo.lock_for_job(session, job.id)
               if d.status == "pending"]  # fmt: skip
    if not pending:
        return
    now = utcnow()
    # The last one's next attempt starts within a dispatcher pass of its due time (for one
    # being sent, the end of its lease) and takes at most webhook_timeout_s.
    retry_at = max(now, *(_due(d, now) for d in pending)) + timedelta(
        seconds=settings.webhook_dispatch_interval_s + settings.webhook_timeout_s
    )
    wait_s = max(1, math.ceil((retry_at - now).total_seconds()))
    events = ", ".join(sorted({d.event_type for d in pending}))
    what = "a webhook delivery" if len(pending) == 1 else f"{len(pending)} webhook deliveries"
    raise Conflict(
        f"job {job.id} has {what} still to send ({events}): retry the deletion after "
        f"{rfc3339(retry_at)} (in {wait_s} s), once they have been delivered or have failed "
        f"for good (GET /v1/jobs/{job.id}/webhook-deliveries)",
        code="webhook_pending", headers={"Retry-After": str(wait_s)},
        errors=[{"delivery_id": str(d.id), "event_type": d.event_type, "attempts": d.attempts,
                 "next_attempt_at": rfc3339(_due(d, now))} for d in pending],
    )  # fmt: skip


def _due(delivery: WebhookDelivery, now: datetime) -> datetime:
    """When its next attempt is due (SQLite gives naive UTC times back)."""
    when = delivery.next_attempt_at or now
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _in_use(kind: str, upload_id: uuid.UUID, jobs: Sequence[Job]) -> Conflict:
    first = jobs[0]
    more = f" (and {len(jobs) - 1} more shown in errors)" if len(jobs) > 1 else ""
    return Conflict(
        f"job {first.id} ({first.status}) uses {kind} {upload_id}{more}: cancel it or wait "
        f"for it to finish, then delete the {kind}",
        code=f"{kind.replace(' ', '')}_in_use",
        errors=[{"job_id": str(j.id), "status": j.status} for j in jobs],
    )


def delete_model(session: Session, settings: Settings, raw_id: str, caller: Caller) -> None:
    _delete_upload(session, settings, raw_id, caller, "model")


def delete_dataset(session: Session, settings: Settings, raw_id: str, caller: Caller) -> None:
    _delete_upload(session, settings, raw_id, caller, "data set")


def _delete_upload(
    session: Session, settings: Settings, raw_id: str, caller: Caller, kind: str
) -> None:
    """An uploaded model or data set (`kind`), refused while a queued or running job uses it;
    its stored file goes after the commit."""
    is_model = kind == "model"
    get = uploads_repo.get_model if is_model else uploads_repo.get_dataset
    upload_id = jobs_service.parse_id(raw_id)
    upload = get(session, upload_id, tenant_id=caller.scope, lock="update") if upload_id else None
    if upload is None:
        raise NotFound(f"no {kind} {raw_id!r}", code=f"{kind.replace(' ', '')}_not_found")
    key = str(upload.id)
    if is_model:
        users = jobs_repo.active_using(session, model=key)
    else:
        users = jobs_repo.active_using(session, dataset=key)
    if users:
        raise _in_use(kind, upload.id, users)
    released = [Released(upload.storage_key, upload.created_at)]
    idempotency_repo.forget_resource(session, upload.tenant_id, upload.id)
    (uploads_repo.delete_model if is_model else uploads_repo.delete_dataset)(session, upload.id)
    _after_commit_release(session, settings, released, None)
