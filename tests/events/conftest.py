"""Fixtures of the events tests: the provider emulator over real HTTP, fast-failing
provider settings, and helpers to run a sync against a chosen response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from junction.emulators.provider import create_app as create_provider_emulator
from junction.events import service
from junction.events.models import SyncRun
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.settings import Settings
from tests.support.live import serving_in_thread


@pytest.fixture(scope="session")
def provider_emulator() -> Iterator[str]:
    """The provider emulator served by uvicorn on a free loopback port, for the session."""
    with serving_in_thread(create_provider_emulator(), "provider emulator") as url:
        yield url


@pytest.fixture
def settings(settings: Settings, provider_emulator: str) -> Settings:
    return settings.model_copy(
        update={
            "provider_url": f"{provider_emulator}/api/events?mode=fixed&response=1",
            "provider_read_timeout_seconds": 2.0,
            "provider_connect_timeout_seconds": 1.0,
            "provider_attempts": 2,
            "events_cache_version_check_seconds": 0.0,
        }
    )


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


def feed_url(base_url: str, query: str) -> str:
    return f"{base_url}/api/events?{query}"


async def sync_from(database: Database, settings: Settings, base_url: str, query: str) -> SyncRun:
    """One sync against the emulator answering as ``query`` says (``mode=fixed&response=2``)."""
    configured = settings.model_copy(update={"provider_url": feed_url(base_url, query)})
    return await service.run_sync(database, configured, "test")


async def sync_response(database: Database, settings: Settings, base_url: str, n: int) -> SyncRun:
    return await sync_from(database, settings, base_url, f"mode=fixed&response={n}")


async def api_key(database: Database, *scopes: Scope) -> str:
    async with database.transaction() as session:
        _, plain = await create_api_key(session, "events tests", scopes)
    return plain


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client
