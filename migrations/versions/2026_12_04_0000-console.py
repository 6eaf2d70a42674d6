"""console: paused queues, schedules that can be disabled, jobs finished per minute, the
console's audit log, and (PostgreSQL) an index for searching jobs by their payload

Revision ID: 5b9d3f7a1c24
Revises: 4a8c2e6f0b13
Create Date: 2026-12-04 00:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from junction.platform.db import UTCDateTime

revision: str = "5b9d3f7a1c24"
down_revision: str | None = "4a8c2e6f0b13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("job_schedules") as table:
        table.add_column(
            sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    op.create_table(
        "job_queues",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "job_minutes",
        sa.Column("minute", UTCDateTime(), primary_key=True),
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("dead", sa.Integer(), nullable=False),
    )
    op.create_table(
        "console_audit",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("key_name", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=True),
    )
    op.create_index("ix_console_audit_at", "console_audit", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        # Containment (@>) over the payload as jsonb: the console's search by arguments.
        op.execute(
            "CREATE INDEX ix_jobs_payload ON jobs USING gin ((payload::jsonb) jsonb_path_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_jobs_payload")
    op.drop_index("ix_console_audit_at", "console_audit")
    op.drop_table("console_audit")
    op.drop_table("job_minutes")
    op.drop_table("job_queues")
    with op.batch_alter_table("job_schedules") as table:
        table.drop_column("enabled")
