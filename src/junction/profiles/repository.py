"""The queries of the profiles domain; nothing else in it writes SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import utcnow
from junction.profiles.models import SyncStatus, User

_LIVE = User.deleted_at.is_(None)


async def find_live(session: AsyncSession, uuid: str) -> User | None:
    return await session.scalar(select(User).where(User.uuid == uuid, _LIVE))


async def has_live_users(session: AsyncSession) -> bool:
    return (await session.scalar(select(User.id).where(_LIVE).limit(1))) is not None


async def email_taken(session: AsyncSession, email_key: str, except_id: int | None = None) -> bool:
    query = select(User.id).where(User.email_key == email_key)
    if except_id is not None:
        query = query.where(User.id != except_id)
    return (await session.scalar(query.limit(1))) is not None


async def list_live(
    session: AsyncSession, *, email_key: str | None, offset: int, limit: int
) -> tuple[Sequence[User], int]:
    query = select(User).where(_LIVE)
    if email_key is not None:
        query = query.where(User.email_key == email_key)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(User.created_at, User.id).offset(offset).limit(limit)
    )
    return rows.all(), int(total or 0)


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [
        User.synced_version < User.sync_version,
        User.sync_status != SyncStatus.failed.value,
        or_(User.sync_next_attempt_at.is_(None), User.sync_next_attempt_at <= now),
        or_(User.sync_claimed_until.is_(None), User.sync_claimed_until < now),
    ]


async def claim_for_sync(
    session: AsyncSession, *, first: int | None, limit: int, lease: timedelta
) -> Sequence[User]:
    """Lease up to ``limit`` users that Airtable must hear about, ``first`` among them if due.

    The lease keeps concurrent sync jobs from writing the same users; it runs out by itself
    if the worker dies, so a claimed user is never stranded.
    """
    now = utcnow()
    candidates = select(User.id).where(*_due(now))
    if first is not None:
        candidates = candidates.order_by((User.id == first).desc())
    candidates = candidates.order_by(User.id).limit(limit)
    if session.get_bind().dialect.name != "sqlite":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(await session.scalars(candidates))
    if not ids:
        return []
    await session.execute(
        update(User).where(User.id.in_(ids)).values(sync_claimed_until=now + lease)
    )
    rows = await session.scalars(
        select(User)
        .where(User.id.in_(ids))
        .order_by(User.id)
        .execution_options(populate_existing=True)
    )
    return rows.all()


async def delete_if_never_synced(session: AsyncSession, user: User) -> bool:
    """Delete the row if no write to Airtable was ever attempted nor is in flight.

    The condition is in the DELETE itself, so PostgreSQL checks it again on the latest row
    should a sync job lease the user concurrently.
    """
    result = await session.execute(
        delete(User)
        .where(
            User.id == user.id,
            User.airtable_record_id.is_(None),
            User.synced_version == 0,
            User.sync_attempts == 0,
            or_(User.sync_claimed_until.is_(None), User.sync_claimed_until < utcnow()),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        return False
    session.expunge(user)
    return True


async def count_due(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).where(*_due(utcnow()))) or 0)


async def load(session: AsyncSession, ids: Sequence[int]) -> Sequence[User]:
    rows = await session.scalars(
        select(User).where(User.id.in_(ids)).execution_options(populate_existing=True)
    )
    return rows.all()


async def user_by_uuid(session: AsyncSession, uuid: str) -> User | None:
    """The user with ``uuid``, deleted or not (a deletion is pushed to Airtable too)."""
    return await session.scalar(select(User).where(User.uuid == uuid).with_for_update())
