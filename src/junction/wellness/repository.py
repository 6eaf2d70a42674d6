"""Every query of the wellness domain: batch upserts, the cursor, reads. (Runs, dead letters
and the lease are the sync kit's.)

Upserts are ``INSERT ... ON CONFLICT (external_id) DO UPDATE`` through SQLAlchemy's
PostgreSQL and SQLite dialects (both speak it), sent as one executemany per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.jobs.models import ACTIVE_STATES, Job, Schedule
from junction.platform.sql import insert_for, locked_row, one_of
from junction.wellness.models import Appointment, Client, SyncState, SyncStatus

SyncedModel = type[Client] | type[Appointment]
CHUNK = 500
"""Keys per IN (...) list: well under every backend's limit on bound parameters."""


@dataclass(frozen=True)
class KnownRecord:
    content_hash: str | None
    sync_status: str
    deleted: bool


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def known_records(
    session: AsyncSession, model: SyncedModel, external_ids: Sequence[str]
) -> dict[str, KnownRecord]:
    found: dict[str, KnownRecord] = {}
    for part in chunks(external_ids):
        rows = await session.execute(
            select(
                model.external_id, model.content_hash, model.sync_status, model.deleted_at
            ).where(one_of(session, model.external_id, part))
        )
        for external_id, digest, status, deleted_at in rows:
            found[external_id] = KnownRecord(digest, status, deleted_at is not None)
    return found


async def upsert(session: AsyncSession, model: SyncedModel, rows: list[dict[str, Any]]) -> None:
    """Insert or overwrite ``rows`` (dicts of column values) by external_id."""
    if not rows:
        return
    # The table, not the entity: Core skips the ORM's per-row bookkeeping (a third of a
    # full sync's time). RETURNING makes SQLAlchemy send the rows as multi-row VALUES
    # ("insertmanyvalues"), a few statements a page instead of one per row.
    table = model.__table__
    statement = insert_for(session, table)
    kept = {"id", "external_id", "created_at"}
    columns = [name for name in rows[0] if name not in kept]
    statement = statement.on_conflict_do_update(
        index_elements=["external_id"],
        set_={name: statement.excluded[name] for name in columns},
    )
    await session.execute(statement.returning(table.c.id), rows)


async def client_ids(session: AsyncSession, external_ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(external_ids):
        rows = await session.execute(
            select(Client.external_id, Client.id).where(one_of(session, Client.external_id, part))
        )
        found.update({external_id: row_id for external_id, row_id in rows})
    return found


async def insert_placeholder_clients(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Clients known only from an appointment: created ``pending``, never overwritten here."""
    if rows:
        statement = insert_for(session, Client).on_conflict_do_nothing(
            index_elements=["external_id"]
        )
        await session.execute(statement, rows)


async def mark_deleted(
    session: AsyncSession, model: SyncedModel, external_ids: Sequence[str], now: datetime
) -> int:
    deleted = 0
    for part in chunks(external_ids):
        result = await session.execute(
            update(model)
            .where(one_of(session, model.external_id, part), model.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now, last_synced_at=now)
        )
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


async def mark_rejected(
    session: AsyncSession, model: SyncedModel, errors: dict[str, str], now: datetime
) -> None:
    """Upstream's latest version was refused: the row keeps its last good data."""
    for external_id, message in errors.items():
        await session.execute(
            update(model)
            .where(model.external_id == external_id)
            .values(sync_status=SyncStatus.error.value, sync_errors=message, updated_at=now)
        )


async def live_external_ids(session: AsyncSession, model: SyncedModel) -> list[str]:
    """Records a full list should contain: live, and fetched from the list at least once."""
    result = await session.scalars(
        select(model.external_id).where(
            model.deleted_at.is_(None), model.sync_status != SyncStatus.pending.value
        )
    )
    return list(result)


async def locked_state(session: AsyncSession, kind: str) -> SyncState:
    """The kind's cursor row, created if missing, locked until the transaction ends."""
    return await locked_row(session, SyncState, kind=kind)


async def status_counts(session: AsyncSession, model: SyncedModel) -> tuple[dict[str, int], int]:
    """Live records per sync_status, and how many are marked deleted."""
    rows = await session.execute(
        select(model.sync_status, func.count())
        .where(model.deleted_at.is_(None))
        .group_by(model.sync_status)
    )
    counts = {status.value: 0 for status in SyncStatus}
    counts.update({status: int(count) for status, count in rows})
    deleted = await session.scalar(
        select(func.count()).select_from(model).where(model.deleted_at.is_not(None))
    )
    return counts, int(deleted or 0)


async def save_cursor(session: AsyncSession, kind: str, **values: Any) -> None:
    await session.execute(update(SyncState).where(SyncState.kind == kind).values(**values))


async def sync_states(session: AsyncSession) -> dict[str, SyncState]:
    return {state.kind: state for state in await session.scalars(select(SyncState))}


@dataclass(frozen=True)
class RecordFilter:
    sync_status: str | None = None
    include_deleted: bool = False
    updated_after: datetime | None = None
    updated_before: datetime | None = None


async def list_clients(
    session: AsyncSession, filters: RecordFilter, offset: int, limit: int
) -> tuple[list[Client], int]:
    query = _filtered(select(Client), Client, filters)
    total = await _count(session, query)
    rows = await session.scalars(query.order_by(Client.id).offset(offset).limit(limit))
    return list(rows), total


async def list_appointments(
    session: AsyncSession,
    filters: RecordFilter,
    client_external_id: str | None,
    starts_after: datetime | None,
    starts_before: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[Appointment], int]:
    query = _filtered(select(Appointment), Appointment, filters)
    if client_external_id is not None:
        query = query.where(Appointment.client_external_id == client_external_id)
    if starts_after is not None:
        query = query.where(Appointment.starts_at >= starts_after)
    if starts_before is not None:
        query = query.where(Appointment.starts_at < starts_before)
    total = await _count(session, query)
    rows = await session.scalars(
        query.order_by(Appointment.starts_at, Appointment.id).offset(offset).limit(limit)
    )
    return list(rows), total


def _filtered(query: Select[Any], model: SyncedModel, filters: RecordFilter) -> Select[Any]:
    if filters.sync_status is not None:
        query = query.where(model.sync_status == filters.sync_status)
    if not filters.include_deleted:
        query = query.where(model.deleted_at.is_(None))
    if filters.updated_after is not None:
        query = query.where(model.updated_at >= filters.updated_after)
    if filters.updated_before is not None:
        query = query.where(model.updated_at < filters.updated_before)
    return query


async def _count(session: AsyncSession, query: Select[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def schedules(session: AsyncSession, names: Sequence[str]) -> dict[str, Schedule]:
    rows = await session.scalars(select(Schedule).where(Schedule.name.in_(list(names))))
    return {row.name: row for row in rows}


async def active_jobs(session: AsyncSession, job_name: str) -> dict[str, int]:
    rows = await session.execute(
        select(Job.state, func.count())
        .where(Job.name == job_name, Job.state.in_([s.value for s in ACTIVE_STATES]))
        .group_by(Job.state)
    )
    counts = {state.value: 0 for state in ACTIVE_STATES}
    counts.update({state: int(count) for state, count in rows})
    return counts
