"""integration kit: one run table, one dead-letter table and one lease table for every
integration; the provider feed's and the wellness sync's runs and dead letters move over

Events runs keep their ids (the events data version is the newest writing run's id);
wellness runs follow them, their ids shifted past the last events run, and their dead
letters with them. The wellness leases move to ``integration_leases``.

Revision ID: 4a8c2e6f0b13
Revises: 9d4e2b7c1a60
Create Date: 2026-12-03 08:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4a8c2e6f0b13"
down_revision: str | None = "9d4e2b7c1a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _create_tables()
    bind = op.get_bind()
    offset = bind.scalar(sa.text("SELECT COALESCE(MAX(id), 0) FROM event_sync_runs"))
    op.execute(
        """
        INSERT INTO integration_runs (id, integration, kind, trigger, mode, status, source,
            started_at, finished_at, fetched, created, updated, unchanged, deleted, set_aside,
            rows_written, bytes_read, notes)
        SELECT id, 'events', 'feed', trigger, 'full', status, source, started_at, finished_at,
            0, created, updated, unchanged, 0, skipped, rows_written, feed_bytes, errors
        FROM event_sync_runs
        """
    )
    op.execute(
        sa.text(
            """
            INSERT INTO integration_runs (id, integration, kind, trigger, mode, status, job_id,
                started_at, finished_at, cursor_from, cursor_to, fetched, created, updated,
                unchanged, deleted, set_aside, rows_written, error, notes)
            SELECT id + :offset, 'wellness', kind, trigger, mode, status, job_id, started_at,
                finished_at, cursor_from, cursor_to, fetched, created, updated, unchanged,
                deleted, failed, created + updated + deleted, error, '[]'
            FROM wellness_sync_runs
            """
        ).bindparams(offset=offset)
    )
    op.execute(
        sa.text(
            """
            INSERT INTO integration_dead_letters (integration, kind, run_id, external_id,
                payload, error, created_at, resolved_at, resolution)
            SELECT 'wellness', kind, run_id + :offset, external_id, payload, error, created_at,
                resolved_at, CASE WHEN resolved_at IS NULL THEN NULL ELSE 'superseded' END
            FROM wellness_dead_letters
            """
        ).bindparams(offset=offset)
    )
    op.execute(
        sa.text(
            """
            INSERT INTO integration_leases (name, holder, expires_at)
            SELECT 'wellness:' || kind, CAST(holder_run_id + :offset AS VARCHAR(100)),
                lease_expires_at
            FROM wellness_sync_state WHERE holder_run_id IS NOT NULL
            """
        ).bindparams(offset=offset)
    )
    if bind.dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('integration_runs', 'id'), "
            "COALESCE((SELECT MAX(id) FROM integration_runs), 0) + 1, false)"
        )
    op.drop_table("wellness_dead_letters")
    op.drop_table("wellness_sync_runs")
    op.drop_table("event_sync_runs")
    with op.batch_alter_table("wellness_sync_state") as batch_op:
        batch_op.drop_column("holder_run_id")
        batch_op.drop_column("lease_expires_at")


def _create_tables() -> None:
    op.create_table(
        "integration_runs",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("integration", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", ROW_ID, nullable=True),
        sa.Column("source", sa.String(length=2000), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("set_aside", sa.Integer(), nullable=False),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("bytes_read", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_runs")),
    )
    op.create_index(
        "ix_integration_runs_integration_kind_started_at",
        "integration_runs",
        ["integration", "kind", "started_at"],
    )
    op.create_index(
        "ix_integration_runs_integration_rows_written_id",
        "integration_runs",
        ["integration", "rows_written", "id"],
    )
    op.create_table(
        "integration_dead_letters",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("integration", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("run_id", ROW_ID, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["integration_runs.id"],
            name=op.f("fk_integration_dead_letters_run_id_integration_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_dead_letters")),
    )
    op.create_index(
        "ix_integration_dead_letters_lookup",
        "integration_dead_letters",
        ["integration", "kind", "external_id"],
    )
    op.create_index("ix_integration_dead_letters_run_id", "integration_dead_letters", ["run_id"])
    op.create_table(
        "integration_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_integration_leases")),
    )


def downgrade() -> None:
    # The run history does not go back: the old tables come back empty, as a fresh
    # database has them, and the next runs fill them.
    with op.batch_alter_table("wellness_sync_state") as batch_op:
        batch_op.add_column(sa.Column("holder_run_id", ROW_ID, nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.drop_table("integration_leases")
    op.drop_table("integration_dead_letters")
    op.drop_table("integration_runs")
    _recreate_old_tables()


def _recreate_old_tables() -> None:
    op.create_table(
        "event_sync_runs",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("created", "updated", "unchanged", "skipped", "rows_written")
        ),
        sa.Column("feed_bytes", sa.BigInteger(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_sync_runs")),
    )
    op.create_index("ix_event_sync_runs_rows_written_id", "event_sync_runs", ["rows_written", "id"])
    op.create_table(
        "wellness_sync_runs",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", ROW_ID, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_to", sa.DateTime(timezone=True), nullable=True),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("fetched", "created", "updated", "unchanged", "deleted", "failed")
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wellness_sync_runs")),
    )
    op.create_index(
        "ix_wellness_sync_runs_kind_started_at", "wellness_sync_runs", ["kind", "started_at"]
    )
    op.create_table(
        "wellness_dead_letters",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", ROW_ID, nullable=False),
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
    op.create_index(
        "ix_wellness_dead_letters_kind_external_id",
        "wellness_dead_letters",
        ["kind", "external_id"],
    )
    op.create_index("ix_wellness_dead_letters_run_id", "wellness_dead_letters", ["run_id"])
