"""API keys: `sk_<prefix>_<secret>`, issued for a tenant, stored as the sha256 of the secret
(the secret is random and high-entropy, so a plain digest is enough), shown once. The
documented way to make one (`python -m app create-api-key`) also makes a tenant's first
webhook signing secret, shown once too."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import ApiKey, Tenant
from app.errors import Unauthenticated
from app.repositories import tenants as tenants_repo
from app.services.webhooks import first_secret
from app.tenancy import Caller

SCHEME = "sk"
MAX_TENANT_NAME = 255


@dataclass(frozen=True)
class IssuedKey:
    token: str  # the only copy of the secret
    api_key: ApiKey
    tenant: Tenant

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.tenant.id


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """`sk_<prefix>_<secret>` -> (prefix, secret); the prefix is hex, the secret may hold `_`."""
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != SCHEME or not prefix or not secret:
        return None
    return prefix, secret


def tenant_named(session: Session, name: str) -> Tenant:
    """The tenant called name, created if missing."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_TENANT_NAME:
        raise ValueError(f"a tenant name has 1 to {MAX_TENANT_NAME} characters")
    tenant = tenants_repo.get_by_name(session, name)
    return tenant or tenants_repo.add(session, Tenant(id=uuid.uuid4(), name=name))


def issue(session: Session, tenant_name: str, *, admin: bool = False) -> IssuedKey:
    tenant = tenant_named(session, tenant_name)
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    key = tenants_repo.add_key(
        session,
        ApiKey(id=uuid.uuid4(), tenant_id=tenant.id, prefix=prefix, hash=digest(secret),
               is_admin=admin),
    )  # fmt: skip
    return IssuedKey(token=f"{SCHEME}_{prefix}_{secret}", api_key=key, tenant=tenant)


def issue_with_first_secret(
    session: Session, tenant_name: str, *, admin: bool = False
) -> tuple[IssuedKey, str | None]:
    """A key, and the tenant's first webhook signing secret (whsec_...) when it has no valid
    one (None when it has): the caller shows both, once."""
    issued = issue(session, tenant_name, admin=admin)
    secret = first_secret(session, issued.tenant_id)
    return issued, secret.secret if secret is not None else None


def revoke(session: Session, key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()


def authenticate(session: Session, token: str | None) -> Caller:
    if not token:
        raise Unauthenticated("an API key is required: Authorization: Bearer <key>")
    parsed = parse(token.strip())
    key = tenants_repo.key_by_prefix(session, parsed[0]) if parsed else None
    if parsed is None or key is None or not hmac.compare_digest(key.hash, digest(parsed[1])):
        raise Unauthenticated("the API key is not valid")
    if key.revoked_at is not None:
        raise Unauthenticated("the API key has been revoked")
    return Caller(tenant_id=key.tenant_id, is_admin=key.is_admin)
