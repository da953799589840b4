"""Tenant and API key queries."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.db.models import ApiKey, Tenant


def get_by_name(session: Session, name: str) -> Tenant | None:
    return session.scalars(select(Tenant).where(Tenant.name == name)).one_or_none()


def add(session: Session, tenant: Tenant) -> Tenant:
    session.add(tenant)
    session.flush()
    return tenant


def add_key(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


_KEY_BY_PREFIX = select(ApiKey).where(ApiKey.prefix == bindparam("prefix"))


def key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalars(_KEY_BY_PREFIX, {"prefix": prefix}).one_or_none()
