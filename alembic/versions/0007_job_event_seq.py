"""per-job event numbers: job_event.seq (1, 2, 3, ... within each job, unique with job_id)
and job_event_seq, each job's last number handed out, so the ids the API shows say nothing
about other tenants' activity; job_event.id stays the internal key. Existing events are
numbered in id order and each job's counter set to its last number.

The unique (job_id, seq) index serves every lookup by job, so the old index on job_id alone
is dropped.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Both databases (SQLite 3.33+) take UPDATE ... FROM and window functions.
NUMBER_EVENTS = """
    UPDATE job_event SET seq = numbered.n
    FROM (
        SELECT id, row_number() OVER (PARTITION BY job_id ORDER BY id) AS n FROM job_event
    ) AS numbered
    WHERE job_event.id = numbered.id
"""
SET_COUNTERS = """
    INSERT INTO job_event_seq (job_id, last_seq)
    SELECT job_id, max(seq) FROM job_event GROUP BY job_id
"""


def upgrade() -> None:
    op.create_table(
        "job_event_seq",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_event_seq_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_event_seq")),
    )
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(NUMBER_EVENTS)
    op.execute(SET_COUNTERS)
    # SQLite recreates job_event here; nothing references it, so nothing cascades.
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint("uq_job_event_job_id", ["job_id", "seq"])
        batch_op.drop_index("ix_job_event_job_id")


def downgrade() -> None:
    with op.batch_alter_table("job_event", schema=None) as batch_op:
        batch_op.create_index("ix_job_event_job_id", ["job_id"], unique=False)
        batch_op.drop_constraint("uq_job_event_job_id", type_="unique")
        batch_op.drop_column("seq")
    op.drop_table("job_event_seq")
