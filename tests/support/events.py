"""Helpers of the events tests: a sync against a chosen emulator response, and keys."""

from __future__ import annotations

from junction.events import service
from junction.events.schemas import EventSyncRunPublic
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.settings import Settings


def feed_url(base_url: str, query: str) -> str:
    return f"{base_url}/api/events?{query}"


async def sync_from(
    database: Database, settings: Settings, base_url: str, query: str
) -> EventSyncRunPublic:
    """One sync against the emulator answering as ``query`` says (``mode=fixed&response=2``)."""
    configured = settings.model_copy(update={"provider_url": feed_url(base_url, query)})
    return await service.run_sync(database, configured, "test")


async def sync_response(
    database: Database, settings: Settings, base_url: str, n: int
) -> EventSyncRunPublic:
    return await sync_from(database, settings, base_url, f"mode=fixed&response={n}")


async def api_key(database: Database, *scopes: Scope) -> str:
    async with database.transaction() as session:
        _, plain = await create_api_key(session, "events tests", scopes)
    return plain


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
