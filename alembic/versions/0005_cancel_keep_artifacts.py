"""cancel options: keep_partial_artifacts, whether a canceled running job keeps the
artifacts it registered before it stopped (default: they are deleted)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _foreign_keys(enabled: bool) -> None:
    """SQLite recreates `job` to drop a column; with foreign keys on, dropping the old table
    would cascade into job_event and artifact (see 0002)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "keep_partial_artifacts", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    _foreign_keys(False)
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("keep_partial_artifacts")
    _foreign_keys(True)
