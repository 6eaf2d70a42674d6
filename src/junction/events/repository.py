"""Queries of the events domain, and only here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from junction.events.models import Event, Slot, Zone
from junction.platform.db import utcnow


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    content_hash: str
    ever_online: bool


@dataclass(frozen=True, slots=True)
class StoredSlot:
    id: int
    uuid: uuid.UUID
    content_hash: str


async def events_by_external_id(
    session: AsyncSession, external_ids: Sequence[str]
) -> dict[str, StoredEvent]:
    rows = await session.execute(
        select(Event.external_id, Event.id, Event.content_hash, Event.ever_online).where(
            Event.external_id.in_(external_ids)
        )
    )
    return {row[0]: StoredEvent(row[1], row[2], row[3]) for row in rows}


async def insert_returning_ids(
    session: AsyncSession, model: type[Event] | type[Slot], rows: list[dict[str, Any]]
) -> list[int]:
    """Insert many rows in one statement; ids come back in the order of ``rows``."""
    if not rows:
        return []
    result = await session.execute(
        insert(model).returning(model.id, sort_by_parameter_order=True), rows
    )
    return [row[0] for row in result]


async def update_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        values = {key: value for key, value in row.items() if key != "id"}
        await session.execute(update(Event).where(Event.id == row["id"]).values(**values))


async def current_slots(
    session: AsyncSession, event_ids: Sequence[int]
) -> dict[tuple[int, str], StoredSlot]:
    rows = await session.execute(
        select(Slot.event_id, Slot.external_id, Slot.id, Slot.uuid, Slot.content_hash).where(
            Slot.current.is_(True), Slot.event_id.in_(event_ids)
        )
    )
    return {(row[0], row[1]): StoredSlot(row[2], row[3], row[4]) for row in rows}


async def retire_slots(session: AsyncSession, slot_ids: Sequence[int]) -> None:
    if slot_ids:
        await session.execute(
            update(Slot)
            .where(Slot.id.in_(slot_ids))
            .values(current=False, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def insert_zones(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(Zone), rows)


def _overlapping(starts_at: datetime, ends_at: datetime) -> list[ColumnElement[bool]]:
    return [Slot.current.is_(True), Slot.starts_at <= ends_at, Slot.ends_at >= starts_at]


async def events_in_range(
    session: AsyncSession, starts_at: datetime, ends_at: datetime, offset: int, limit: int
) -> tuple[int, list[Event]]:
    """Events with a current slot overlapping the range, earliest first, and their total."""
    first_slot = (
        select(Slot.event_id, func.min(Slot.starts_at).label("first_start"))
        .where(*_overlapping(starts_at, ends_at))
        .group_by(Slot.event_id)
        .subquery()
    )
    total = await session.scalar(select(func.count()).select_from(first_slot))
    events = await session.scalars(
        select(Event)
        .join(first_slot, first_slot.c.event_id == Event.id)
        .order_by(first_slot.c.first_start, Event.id)
        .offset(offset)
        .limit(limit)
    )
    return int(total or 0), list(events)


async def overlapping_slots(
    session: AsyncSession,
    starts_at: datetime,
    ends_at: datetime,
    event_ids: Sequence[int] | None = None,
    ever_online: bool = False,
) -> list[Slot]:
    """Current slots overlapping the range, with their zones (and their event if asked)."""
    query = (
        select(Slot)
        .where(*_overlapping(starts_at, ends_at))
        .options(selectinload(Slot.zones))
        .order_by(Slot.starts_at, Slot.id)
    )
    if event_ids is not None:
        query = query.where(Slot.event_id.in_(event_ids))
    if ever_online:
        query = (
            query.join(Event, Event.id == Slot.event_id)
            .where(Event.ever_online.is_(True))
            .options(selectinload(Slot.event))
        )
    return list(await session.scalars(query))
