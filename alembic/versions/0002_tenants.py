"""tenants, API keys and idempotency keys; jobs, models and data sets belong to a tenant

Rows that exist already are given to a tenant named "default".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = ("job", "model", "dataset")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _foreign_keys(enabled: bool) -> None:
    """SQLite recreates a table to change it; with foreign keys on, dropping the old `job`
    would cascade into job_event and artifact. (No-op inside a transaction, and on the
    fresh databases where that happens there are no rows to lose.)"""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


def _create_tables() -> None:
    op.create_table(
        "tenant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant")),
        sa.UniqueConstraint("name", name=op.f("uq_tenant_name")),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_api_key_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_key_prefix")),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "idempotency_key",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_idempotency_key_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_key")),
        sa.UniqueConstraint("tenant_id", "key", name=op.f("uq_idempotency_key_tenant_id")),
    )


def upgrade() -> None:
    _foreign_keys(False)
    _create_tables()
    tenant = sa.table(
        "tenant", sa.column("id", sa.Uuid()), sa.column("name", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )  # fmt: skip
    default_id = uuid.uuid4()
    op.bulk_insert(tenant, [{"id": default_id, "name": "default", "created_at": datetime.now(UTC)}])
    for name in OWNED:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("tenant_id", sa.Uuid(), nullable=True))
        owned = sa.table(name, sa.column("tenant_id", sa.Uuid()))
        op.execute(owned.update().values(tenant_id=default_id))
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.alter_column("tenant_id", existing_type=sa.Uuid(), nullable=False)
            batch_op.create_index(batch_op.f(f"ix_{name}_tenant_id"), ["tenant_id"], unique=False)
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{name}_tenant_id_tenant"), "tenant", ["tenant_id"], ["id"]
            )
    _foreign_keys(True)


def downgrade() -> None:
    _foreign_keys(False)
    for name in reversed(OWNED):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"fk_{name}_tenant_id_tenant"), type_="foreignkey")
            batch_op.drop_index(batch_op.f(f"ix_{name}_tenant_id"))
            batch_op.drop_column("tenant_id")
    op.drop_table("idempotency_key")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_tenant_id"))
    op.drop_table("api_key")
    op.drop_table("tenant")
    _foreign_keys(True)
