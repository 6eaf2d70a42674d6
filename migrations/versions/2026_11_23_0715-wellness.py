"""wellness: clients, appointments, sync state, runs and dead letters

Revision ID: 816af8bd9296
Revises: 3c7e5a9b2d41
Create Date: 2026-11-23 06:58:51.165879+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "816af8bd9296"
down_revision: str | None = "3c7e5a9b2d41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wellness_clients",
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=32), nullable=True),
        sa.Column("upstream_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_status", sa.String(length=16), nullable=False),
        sa.Column("sync_errors", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wellness_clients")),
        sa.UniqueConstraint("external_id", name=op.f("uq_wellness_clients_external_id")),
    )
    with op.batch_alter_table("wellness_clients", schema=None) as batch_op:
        batch_op.create_index("ix_wellness_clients_sync_status", ["sync_status"], unique=False)
        batch_op.create_index(
            "ix_wellness_clients_upstream_updated_at", ["upstream_updated_at"], unique=False
        )

    op.create_table(
        "wellness_sync_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wellness_sync_runs")),
    )
    with op.batch_alter_table("wellness_sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_wellness_sync_runs_kind_started_at", ["kind", "started_at"], unique=False
        )

    op.create_table(
        "wellness_sync_state",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_full_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "holder_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_wellness_sync_state")),
    )
    op.create_table(
        "wellness_appointments",
        sa.Column(
            "client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("client_external_id", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("service", sa.String(length=200), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=32), nullable=True),
        sa.Column("upstream_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_status", sa.String(length=16), nullable=False),
        sa.Column("sync_errors", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["wellness_clients.id"],
            name=op.f("fk_wellness_appointments_client_id_wellness_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wellness_appointments")),
        sa.UniqueConstraint("external_id", name=op.f("uq_wellness_appointments_external_id")),
    )
    with op.batch_alter_table("wellness_appointments", schema=None) as batch_op:
        batch_op.create_index("ix_wellness_appointments_client_id", ["client_id"], unique=False)
        batch_op.create_index("ix_wellness_appointments_starts_at", ["starts_at"], unique=False)
        batch_op.create_index("ix_wellness_appointments_sync_status", ["sync_status"], unique=False)

    op.create_table(
        "wellness_dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["wellness_sync_runs.id"],
            name=op.f("fk_wellness_dead_letters_run_id_wellness_sync_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wellness_dead_letters")),
    )
    with op.batch_alter_table("wellness_dead_letters", schema=None) as batch_op:
        batch_op.create_index(
            "ix_wellness_dead_letters_kind_external_id", ["kind", "external_id"], unique=False
        )
        batch_op.create_index("ix_wellness_dead_letters_run_id", ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wellness_dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_wellness_dead_letters_run_id")
        batch_op.drop_index("ix_wellness_dead_letters_kind_external_id")

    op.drop_table("wellness_dead_letters")
    with op.batch_alter_table("wellness_appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_wellness_appointments_sync_status")
        batch_op.drop_index("ix_wellness_appointments_starts_at")
        batch_op.drop_index("ix_wellness_appointments_client_id")

    op.drop_table("wellness_appointments")
    op.drop_table("wellness_sync_state")
    with op.batch_alter_table("wellness_sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_wellness_sync_runs_kind_started_at")

    op.drop_table("wellness_sync_runs")
    with op.batch_alter_table("wellness_clients", schema=None) as batch_op:
        batch_op.drop_index("ix_wellness_clients_upstream_updated_at")
        batch_op.drop_index("ix_wellness_clients_sync_status")

    op.drop_table("wellness_clients")
