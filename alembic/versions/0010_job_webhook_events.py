"""job.webhook_events: the webhook event types a job sends to its webhook_url (a JSON list of
strings; every existing job, and a submission that names none, gets the terminal ones:
job.succeeded, job.failed, job.canceled).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TERMINAL = '["job.succeeded", "job.failed", "job.canceled"]'


def _foreign_keys(enabled: bool) -> None:
    """SQLite recreates `job` to drop a column; with foreign keys on, dropping the old table
    would cascade into job_event and artifact (see 0002)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webhook_events", JSON, nullable=False, server_default=TERMINAL)
        )


def downgrade() -> None:
    _foreign_keys(False)  # before the table copy: SQLite ignores it inside a transaction
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("webhook_events")
    _foreign_keys(True)
