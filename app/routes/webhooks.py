"""/v1/jobs/{id}/webhook-deliveries (the delivery log, redelivery) and /v1/webhook-secrets."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import CallerDep, KnownQueryOnly, SessionDep, SettingsDep
from app.openapi import problems
from app.routes.params import DeliveryId, JobId
from app.schemas.webhooks import (
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookSecretCreated,
    WebhookSecretList,
    WebhookSecretOut,
)
from app.services import webhooks as service

router = APIRouter(tags=["webhooks"])


@router.get(
    "/v1/jobs/{job_id}/webhook-deliveries",
    response_model=WebhookDeliveryList,
    responses=problems(404),
    dependencies=[KnownQueryOnly],
)
def list_deliveries(job_id: JobId, session: SessionDep, caller: CallerDep) -> WebhookDeliveryList:
    """The job's webhook messages, each with every attempt made to deliver it."""
    items = service.deliveries(session, job_id, caller)
    return WebhookDeliveryList(items=[WebhookDeliveryOut.of(d) for d in items])


@router.post(
    "/v1/jobs/{job_id}/webhook-deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=WebhookDeliveryOut,
    responses=problems(404),
)
def redeliver(
    job_id: JobId, delivery_id: DeliveryId, session: SessionDep, caller: CallerDep
) -> WebhookDeliveryOut:
    """Queue the message to be sent again now (same webhook-id)."""
    delivery = service.redeliver(session, job_id, delivery_id, caller)
    return WebhookDeliveryOut.of(delivery)


@router.post("/v1/webhook-secrets", status_code=201, response_model=WebhookSecretCreated)
def rotate_secret(
    session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> WebhookSecretCreated:
    """A new signing secret, shown only in this response. The secrets valid until now keep
    signing (alongside it) for webhook_secret_grace_s."""
    rotated = service.rotate_secret(session, settings, caller)
    meta = WebhookSecretOut.of(rotated.secret)
    return WebhookSecretCreated(
        **meta.model_dump(), secret=rotated.secret.secret,
        previous_expire_at=rotated.previous_expire_at,
    )  # fmt: skip


@router.get(
    "/v1/webhook-secrets", response_model=WebhookSecretList, responses=problems(422),
    dependencies=[KnownQueryOnly],
)  # fmt: skip
def list_secrets(session: SessionDep, caller: CallerDep) -> WebhookSecretList:
    """The tenant's secrets, valid and expired: metadata only, never the secret."""
    items = service.list_secrets(session, caller)
    return WebhookSecretList(items=[WebhookSecretOut.of(s) for s in items])
