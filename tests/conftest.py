"""Shared fixtures: a migrated database per run, per-test isolation, HTTP clients.

The database is built once per run by the Alembic migrations (so they are tested too):
SQLite always, PostgreSQL when JUNCTION_TEST_DATABASE_URL is set. Each test starts from
empty tables: rows are deleted after every test, which, unlike a rolled-back outer
transaction, also isolates tests whose server runs in another process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text

from junction.app import create_app, metadata
from junction.platform.db import Database
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings
from tests.support.app import running
from tests.support.environment import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.support.live import LiveServer, start_live_server


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    path = tmp_path_factory.mktemp("db") / "junction-test.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    upgrade_to_head(Settings(database_url=database_url))
    return database_url


@pytest.fixture
def settings(migrated_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database_url=migrated_database_url,
        redis_url=TEST_REDIS_URL,
        migrate_on_start=False,
        database_startup_attempts=1,
        log_format="console",
        run_embedded_worker=False,
    )


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """A handle on the test database, made from the test's ``settings``."""
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture(autouse=True)
async def _empty_tables(migrated_database_url: str) -> AsyncIterator[None]:
    yield
    database = Database(Settings(database_url=migrated_database_url))
    try:
        async with database.transaction() as session:
            if database.is_sqlite:
                for table in reversed(metadata.sorted_tables):
                    await session.execute(table.delete())
            else:
                names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
                await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await database.dispose()
    if TEST_REDIS_URL:
        async with Redis.from_url(TEST_REDIS_URL) as redis:
            await redis.flushdb()


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def started_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app with its lifespan run, ready once its start-up task has finished."""
    async with running(app):
        await app.state.database.wait_until_reachable(1)
        while not app.state.startup.migrated:
            await asyncio.sleep(0.01)
        yield app


@pytest.fixture
async def client(started_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=started_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://junction.test") as c:
        yield c


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """A real `junction serve` on a free loopback port, on the test database."""
    with start_live_server(settings) as server:
        yield server
