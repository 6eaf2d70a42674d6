"""One run of a kind at a time: a lease row per name, held until it expires.

A holder extends its lease with every commit; a holder that died stops extending, and the
next run takes over once the lease has expired, told who held it so that it can record the
run as interrupted. Every call runs in the caller's transaction, so taking a lease and
opening a run are one commit; the row is locked while it is read (``FOR UPDATE`` on
PostgreSQL; SQLite has one writer at a time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import utcnow
from junction.platform.integrations.models import Lease
from junction.platform.sql import locked_row


class LeaseHeld(Exception):
    """Another holder's lease on this name has not expired."""


async def acquire_lease(
    session: AsyncSession, name: str, holder: str, duration: timedelta
) -> str | None:
    """Take ``name`` for ``holder``; returns the expired holder taken over from, if any.
    Raises ``LeaseHeld`` while another holder's lease runs."""
    lease = await locked_row(session, Lease, name=name)
    now = utcnow()
    previous = lease.holder
    if previous is not None and lease.expires_at is not None and lease.expires_at > now:
        raise LeaseHeld(f"{name} is held by {previous} until {lease.expires_at.isoformat()}")
    lease.holder, lease.expires_at = holder, now + duration
    return previous


async def extend_lease(session: AsyncSession, name: str, holder: str, duration: timedelta) -> bool:
    """Push the expiry on; False if ``holder`` no longer holds ``name`` (taken over)."""
    return await _update_if_held(session, name, holder, expires_at=utcnow() + duration)


async def release_lease(session: AsyncSession, name: str, holder: str) -> bool:
    """Let go of ``name``; False if ``holder`` no longer held it."""
    return await _update_if_held(session, name, holder, holder=None, expires_at=None)


async def lease_holder(session: AsyncSession, name: str) -> tuple[str | None, datetime | None]:
    lease = await session.get(Lease, name)
    return (None, None) if lease is None else (lease.holder, lease.expires_at)


async def _update_if_held(session: AsyncSession, name: str, who: str, **values: object) -> bool:
    result = await session.execute(
        update(Lease).where(Lease.name == name, Lease.holder == who).values(**values)
    )
    return getattr(result, "rowcount", 0) == 1
