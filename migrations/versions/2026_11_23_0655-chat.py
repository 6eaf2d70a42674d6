"""chat: applications, chats, messages and the message search index

Revision ID: 8fe695b51b38
Revises: dd8fd53fffb7
Create Date: 2026-11-23 06:55:25.709514+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8fe695b51b38"
down_revision: str | None = "dd8fd53fffb7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# FTS5 over the folded body (see junction/chat/search.py), its content read from
# chat_messages; the triggers keep it in step in the writing transaction itself.
SQLITE_SEARCH = (
    """
    CREATE VIRTUAL TABLE chat_messages_fts USING fts5(
        search_text,
        content='chat_messages',
        content_rowid='id',
        tokenize='unicode61 remove_diacritics 2',
        prefix='2 3'
    )
    """,
    """
    CREATE TRIGGER chat_messages_fts_insert AFTER INSERT ON chat_messages BEGIN
        INSERT INTO chat_messages_fts(rowid, search_text) VALUES (new.id, new.search_text);
    END
    """,
    """
    CREATE TRIGGER chat_messages_fts_delete AFTER DELETE ON chat_messages BEGIN
        INSERT INTO chat_messages_fts(chat_messages_fts, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    END
    """,
    """
    CREATE TRIGGER chat_messages_fts_update AFTER UPDATE OF search_text ON chat_messages BEGIN
        INSERT INTO chat_messages_fts(chat_messages_fts, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
        INSERT INTO chat_messages_fts(rowid, search_text) VALUES (new.id, new.search_text);
    END
    """,
)
# The search query uses this very expression, so the planner can use the index.
POSTGRES_SEARCH = (
    "CREATE INDEX ix_chat_messages_search ON chat_messages "
    "USING gin (to_tsvector('simple', search_text))"
)


def upgrade() -> None:
    op.create_table(
        "chat_applications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("chats_count", sa.Integer(), nullable=False),
        sa.Column("last_chat_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_applications")),
        sa.UniqueConstraint("token", name=op.f("uq_chat_applications_token")),
    )
    op.create_table(
        "chats",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "application_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("messages_count", sa.Integer(), nullable=False),
        sa.Column("last_message_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["chat_applications.id"],
            name=op.f("fk_chats_application_id_chat_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chats")),
        sa.UniqueConstraint(
            "application_id", "number", name=op.f("uq_chats_application_id_number")
        ),
    )
    op.create_table(
        "chat_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chat_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_chat_messages_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint("chat_id", "number", name=op.f("uq_chat_messages_chat_id_number")),
    )
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_SEARCH:
            op.execute(statement)
    else:
        op.execute(POSTGRES_SEARCH)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS chat_messages_fts_{name}")
        op.execute("DROP TABLE IF EXISTS chat_messages_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_chat_messages_search")
    op.drop_table("chat_messages")
    op.drop_table("chats")
    op.drop_table("chat_applications")
