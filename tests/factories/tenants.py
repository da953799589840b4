"""Tenants and API keys, made through the real service and committed (in a test's
rolled-back transaction, a commit is a savepoint release)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.services.api_keys import IssuedKey, issue, tenant_named


def make_api_key(session: Session, tenant: str | None = None, *, admin: bool = False) -> IssuedKey:
    """A new key for the tenant called `tenant` (a fresh tenant when None)."""
    issued = issue(session, tenant or f"tenant-{uuid.uuid4().hex[:8]}", admin=admin)
    session.commit()
    return issued


def default_tenant_id(session: Session) -> uuid.UUID:
    """The "default" tenant that migration 0002 creates, for rows made without the API."""
    tenant = tenant_named(session, "default")
    session.flush()
    return tenant.id


def auth(issued: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued.token}"}
