"""PostgreSQL: NOTIFY scalpel_job_changed with the job id whenever a job row changes, so API
processes can keep job status reads in memory and drop an entry the moment it goes stale
(app/services/job_cache.py). Nothing on SQLite (the embedded API does not cache).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "scalpel_job_changed"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        CREATE FUNCTION scalpel_notify_job_changed() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('{CHANNEL}', OLD.id::text);
            ELSE
                PERFORM pg_notify('{CHANNEL}', NEW.id::text);
            END IF;
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
    """)  # fmt: skip
    op.execute("""
        CREATE TRIGGER job_changed_notify AFTER UPDATE OR DELETE ON job
        FOR EACH ROW EXECUTE FUNCTION scalpel_notify_job_changed()
    """)  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS job_changed_notify ON job")
    op.execute("DROP FUNCTION IF EXISTS scalpel_notify_job_changed()")
