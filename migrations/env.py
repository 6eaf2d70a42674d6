"""Alembic environment: runs every migration on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from junction.app import metadata
from junction.platform.db import UTCDateTime
from junction.settings import get_settings, normalize_database_url

# Any fixed number: every process that migrates PostgreSQL takes this lock first, so
# several starting at once apply each migration exactly once.
MIGRATION_LOCK_ID = 7_406_113


def _database_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
    return normalize_database_url(url)


def _render_item(type_: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    """Write Junction's column types as the plain SQLAlchemy types they store."""
    if type_ == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=is_sqlite,
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_database_url(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
