"""job names and labels, and artifact expiry: job.name (optional) and job.labels (a JSON
object of strings, {} for every existing job); artifact.expired_at, set when the retention
setting removed the artifact's file. An index on job.labels for the `label=` list filter
(on PostgreSQL a GIN index, jsonb_path_ops, for `labels @> ...`), and on PostgreSQL
expression indexes on the spec's model and data set for the `model=`/`dataset=` filters and
the in-use check of a model or data set deletion. Those compare the stored text, so a job
submitted before this revision that named an uploaded model or data set by another spelling
of its id (upper case, no hyphens) is given the canonical one, as submissions now store it;
down again it keeps it (the canonical id names the same upload).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _foreign_keys(enabled: bool) -> None:
    """SQLite recreates `job` to drop a column; with foreign keys on, dropping the old table
    would cascade into job_event and artifact (see 0002)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


def _canonical(raw: Any) -> Any:
    """An uploaded model's or data set's id as submissions store it; anything else as is."""
    if not isinstance(raw, str):
        return raw
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return raw


def _not_canonical(text: Any) -> Any:
    """Could be a UUID, but not as str(uuid.UUID) writes one (uuid.UUID takes 32 hex digits
    with any hyphens, braces or a urn:uuid: prefix)."""
    return sa.and_(
        sa.func.length(text) >= 32,
        sa.or_(text != sa.func.lower(text), text.not_like("________-____-____-____-____________")),
    )


def _canonical_upload_ids() -> None:
    """spec.model and spec.dataset.name as submissions store them now (see the docstring)."""
    job = sa.table("job", sa.column("id", sa.Uuid()), sa.column("spec", JSON))
    model = job.c.spec["model"].as_string()
    dataset = job.c.spec[("dataset", "name")].as_string()
    conn = op.get_bind()
    candidates = conn.execute(
        sa.select(job.c.id, job.c.spec).where(sa.or_(_not_canonical(model),
                                                     _not_canonical(dataset)))
    ).all()  # fmt: skip
    for job_id, spec in candidates:
        fixed = dict(spec)
        if "model" in spec:
            fixed["model"] = _canonical(spec["model"])
        if isinstance(spec.get("dataset"), dict) and "name" in spec["dataset"]:
            fixed["dataset"] = {**spec["dataset"], "name": _canonical(spec["dataset"]["name"])}
        if fixed != spec:
            conn.execute(sa.update(job).where(job.c.id == job_id).values(spec=fixed))


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("labels", JSON, nullable=False, server_default="{}"))
    with op.batch_alter_table("artifact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_job_labels", "job", ["labels"], postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    )  # fmt: skip
    _canonical_upload_ids()
    if _postgres():
        op.create_index("ix_job_spec_model", "job", [sa.text("(spec ->> 'model')")])
        op.create_index("ix_job_spec_dataset", "job", [sa.text("((spec -> 'dataset') ->> 'name')")])


def downgrade() -> None:
    if _postgres():
        op.drop_index("ix_job_spec_dataset", table_name="job")
        op.drop_index("ix_job_spec_model", table_name="job")
    op.drop_index("ix_job_labels", table_name="job")
    _foreign_keys(False)  # before the first table copy: SQLite ignores it inside a transaction
    with op.batch_alter_table("artifact", schema=None) as batch_op:
        batch_op.drop_column("expired_at")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("labels")
        batch_op.drop_column("name")
    _foreign_keys(True)
