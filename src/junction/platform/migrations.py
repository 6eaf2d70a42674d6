"""Apply Alembic migrations from code (``junction migrate`` and start-up)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from junction.platform.db import Database
from junction.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS_PATH = PROJECT_ROOT / "migrations"
log = structlog.get_logger(__name__)


def alembic_config(settings: Settings) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_PATH))
    # ConfigParser treats % as interpolation; URLs may contain %-escapes.
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def upgrade_to_head(settings: Settings) -> None:
    """Blocking: call from a thread when an event loop is running."""
    path = settings.sqlite_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), "head")


class SchemaNotReady(Exception):
    """The database is behind the code's migrations and this process may not migrate it."""


async def applied_revisions(database: Database) -> set[str]:
    """The revisions the database is at; empty when it was never migrated."""
    try:
        async with database.reading() as session:
            rows = await session.execute(text("SELECT version_num FROM alembic_version"))
    except DBAPIError as exc:
        if _is_missing_table(exc):
            return set()
        raise
    return {row[0] for row in rows}


def _is_missing_table(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return "no such table" in message or "does not exist" in message


@functools.cache
def head_revisions() -> frozenset[str]:
    """The revisions this code's migrations end at (read from the files once)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_PATH))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


async def prepare_schema(settings: Settings, database: Database) -> None:
    """Migrate, as ``serve`` does, unless ``migrate_on_start`` is off; then the schema must
    already be current, or ``SchemaNotReady`` says what to run."""
    if settings.migrate_on_start:
        await asyncio.to_thread(upgrade_to_head, settings)
    elif await applied_revisions(database) != head_revisions():
        raise SchemaNotReady(
            f"The database at {settings.masked()['database_url']} is not migrated: "
            "run `junction migrate`."
        )


async def wait_for_schema(
    settings: Settings, database: Database, poll_seconds: float = 2.0
) -> None:
    """``prepare_schema``, waiting while the migrate step (a Compose service, a Kubernetes
    Job) has not run yet: a process started before it begins once it is done."""
    while True:
        try:
            await prepare_schema(settings, database)
            return
        except SchemaNotReady as exc:
            log.warning("waiting for migrations", reason=str(exc))
            await asyncio.sleep(poll_seconds)
