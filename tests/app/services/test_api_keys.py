"""A key issued the documented way (create-api-key) comes with the tenant's first webhook
signing secret when it has no valid one, and with none when it has."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.repositories import webhooks as webhooks_repo
from app.services.api_keys import authenticate, issue_with_first_secret


def test_the_first_key_brings_the_first_secret(db_session: Session) -> None:
    issued, secret = issue_with_first_secret(db_session, "tenant-first")
    assert secret is not None and secret.startswith("whsec_")
    assert authenticate(db_session, issued.token).tenant_id == issued.tenant_id
    [row] = webhooks_repo.valid_secrets(db_session, issued.tenant_id, utcnow())
    assert row.secret == secret
    again, none = issue_with_first_secret(db_session, "tenant-first", admin=True)
    assert none is None and again.tenant_id == issued.tenant_id
    assert len(webhooks_repo.all_secrets(db_session, issued.tenant_id)) == 1


def test_a_tenant_whose_secrets_all_expired_gets_a_new_one(db_session: Session) -> None:
    issued, first = issue_with_first_secret(db_session, "tenant-expired")
    assert first is not None
    [row] = webhooks_repo.all_secrets(db_session, issued.tenant_id)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db_session.flush()
    _, second = issue_with_first_secret(db_session, "tenant-expired")
    assert second is not None and second != first
