"""Helpers of the wellness tests: the emulator's data set, syncs, and reads of the tables."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from junction.emulators.wellness import EmulatorConfig, WellnessEmulator
from junction.platform.db import Database
from junction.platform.integrations import IntegrationRun, lease_name
from junction.platform.integrations.lease import lease_holder
from junction.settings import Settings
from junction.wellness.models import Appointment, Client, SyncKind, SyncState
from junction.wellness.service import INTEGRATION, RunReport, SyncEngine, SyncRequest

API_KEY = "test-wellness-key"
SMALL = EmulatorConfig(clients=40, appointments=100, api_key=API_KEY)


@dataclass
class ServedEmulator:
    base_url: str
    state: WellnessEmulator


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


async def runs(database: Database) -> list[IntegrationRun]:
    query = select(IntegrationRun).where(IntegrationRun.integration == "wellness")
    async with database.reading() as session:
        return list((await session.scalars(query.order_by(IntegrationRun.id))).all())


async def lease_holder_of(database: Database, kind: SyncKind) -> str | None:
    """Who holds the kind's run lease (None once every run has let go)."""
    async with database.reading() as session:
        holder, _ = await lease_holder(session, lease_name(INTEGRATION, kind.value))
    return holder


async def state_of(database: Database, kind: SyncKind) -> SyncState | None:
    async with database.reading() as session:
        return await session.get(SyncState, kind.value)
