"""per-task data sets: dataset.task, the task an uploaded data set serves (every existing
upload is a sequence_classification table, the server default), and dataset.options, what
one task's checks found that a job needs again (a token_classification upload's tag scheme,
a regression upload's lowest and highest score; {} for the others)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "task", sa.String(length=32), nullable=False,
                server_default="sequence_classification",
            )
        )  # fmt: skip
        batch_op.add_column(sa.Column("options", JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    # SQLite recreates `dataset` to drop the columns; no table references it.
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_column("options")
        batch_op.drop_column("task")
