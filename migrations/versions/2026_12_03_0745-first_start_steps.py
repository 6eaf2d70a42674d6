"""first start steps: the record of steps run once per database (sample data)

Revision ID: 9d4e2b7c1a60
Revises: 5b1f0c2e7a94
Create Date: 2026-12-03 07:45:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d4e2b7c1a60"
down_revision: str | None = "5b1f0c2e7a94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "first_start_steps",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_first_start_steps")),
    )


def downgrade() -> None:
    op.drop_table("first_start_steps")
