"""Fixtures of the wellness tests: the wellness emulator over real HTTP (one server for the
session, reset before each test), settings pointing at it with small backoffs, helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

import junction.wellness.jobs  # noqa: F401  (registers the sync jobs in this process too)
from junction.emulators.wellness import EmulatorConfig, WellnessEmulator, create_wellness_emulator
from junction.platform.db import Database
from junction.settings import Settings
from junction.wellness.models import Appointment, Client, SyncKind, SyncRun, SyncState
from junction.wellness.service import RunReport, SyncEngine, SyncRequest
from tests.support.live import serving_in_thread

API_KEY = "test-wellness-key"
SMALL = EmulatorConfig(clients=40, appointments=100, api_key=API_KEY)


@dataclass
class ServedEmulator:
    base_url: str
    state: WellnessEmulator


@pytest.fixture(scope="session")
def served_emulator() -> Iterator[ServedEmulator]:
    """The wellness emulator served by uvicorn on a free loopback port, for the session."""
    state = WellnessEmulator(SMALL)
    with serving_in_thread(create_wellness_emulator(state), "wellness emulator") as url:
        yield ServedEmulator(url, state)


@pytest.fixture
def emulator(served_emulator: ServedEmulator) -> WellnessEmulator:
    served_emulator.state.reset(SMALL)
    return served_emulator.state


@pytest.fixture
def settings(settings: Settings, served_emulator: ServedEmulator) -> Settings:
    return settings.model_copy(
        update={
            "wellness_api_url": served_emulator.base_url,
            "wellness_api_key": SecretStr(API_KEY),
            "wellness_api_timeout_seconds": 5.0,
            "wellness_api_retry_attempts": 2,
            "wellness_api_backoff_seconds": 0.01,
            "wellness_page_size": 7,
            "wellness_sync_lease_seconds": 30.0,
        }
    )


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


async def sync(
    database: Database, settings: Settings, kind: SyncKind, *, full: bool = False
) -> RunReport:
    return await SyncEngine(database, settings).run(SyncRequest(kind, "test", full=full))


async def count(
    database: Database, model: type[Client] | type[Appointment], **where: object
) -> int:
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    async with database.reading() as session:
        return int(await session.scalar(query) or 0)


async def clients_by_id(database: Database) -> dict[str, Client]:
    async with database.reading() as session:
        return {c.external_id: c for c in (await session.scalars(select(Client))).all()}


async def appointments_by_id(database: Database) -> dict[str, Appointment]:
    async with database.reading() as session:
        return {a.external_id: a for a in (await session.scalars(select(Appointment))).all()}


async def runs(database: Database) -> list[SyncRun]:
    async with database.reading() as session:
        return list((await session.scalars(select(SyncRun).order_by(SyncRun.id))).all())


async def state_of(database: Database, kind: SyncKind) -> SyncState | None:
    async with database.reading() as session:
        return await session.get(SyncState, kind.value)
