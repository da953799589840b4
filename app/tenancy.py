"""Who is calling: the tenant an API key belongs to, and whether the key is an admin's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    tenant_id: uuid.UUID
    is_admin: bool = False

    @property
    def scope(self) -> uuid.UUID | None:
        """The tenant whose resources the caller may see; None (every tenant) for an admin."""
        return None if self.is_admin else self.tenant_id
