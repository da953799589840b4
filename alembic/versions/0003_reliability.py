"""job heartbeats: the running worker's heartbeat_at, indexed with status for the reaper

(dispatched_at, the outbox's column, is in 0001.)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _foreign_keys(enabled: bool) -> None:
    """SQLite recreates `job` to drop a column; with foreign keys on, dropping the old table
    would cascade into job_event and artifact (see 0002)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_job_status_heartbeat_at", ["status", "heartbeat_at"], unique=False
        )


def downgrade() -> None:
    _foreign_keys(False)
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_status_heartbeat_at")
        batch_op.drop_column("heartbeat_at")
    _foreign_keys(True)
