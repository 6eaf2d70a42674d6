"""The kit's queries: runs, dead letters, and the figures computed from them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.integrations.models import DeadLetter, IntegrationRun, RunStatus
from junction.platform.sql import one_of

COUNT_COLUMNS = ("fetched", "created", "updated", "unchanged", "deleted", "set_aside")


async def add_counts(session: AsyncSession, run_id: int, counts: dict[str, int]) -> None:
    """Add to the run's counts in place: concurrent pages of one run never lose an update."""
    values = {name: getattr(IntegrationRun, name) + n for name, n in counts.items() if n}
    if values:
        await session.execute(
            update(IntegrationRun).where(IntegrationRun.id == run_id).values(**values)
        )


async def update_run(session: AsyncSession, run_id: int, **values: Any) -> None:
    await session.execute(
        update(IntegrationRun).where(IntegrationRun.id == run_id).values(**values)
    )


async def get_run(session: AsyncSession, run_id: int) -> IntegrationRun | None:
    return await session.get(IntegrationRun, run_id, populate_existing=True)


async def list_runs(
    session: AsyncSession,
    integration: str,
    *,
    kinds: Sequence[str] | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[IntegrationRun]:
    query = select(IntegrationRun).where(IntegrationRun.integration == integration)
    if kinds is not None:
        query = query.where(IntegrationRun.kind.in_(kinds))
    if status is not None:
        query = query.where(IntegrationRun.status == status)
    query = query.order_by(IntegrationRun.started_at.desc(), IntegrationRun.id.desc())
    return list((await session.scalars(query.limit(limit).offset(offset))).all())


async def count_runs(
    session: AsyncSession, integration: str, *, kinds: Sequence[str] | None, status: str | None
) -> int:
    query = (
        select(func.count())
        .select_from(IntegrationRun)
        .where(IntegrationRun.integration == integration)
    )
    if kinds is not None:
        query = query.where(IntegrationRun.kind.in_(kinds))
    if status is not None:
        query = query.where(IntegrationRun.status == status)
    return int(await session.scalar(query) or 0)


async def last_run(
    session: AsyncSession, integration: str, kind: str, status: str | None = None
) -> IntegrationRun | None:
    query = select(IntegrationRun).where(
        IntegrationRun.integration == integration, IntegrationRun.kind == kind
    )
    if status is not None:
        query = query.where(IntegrationRun.status == status)
    return await session.scalar(query.order_by(IntegrationRun.id.desc()).limit(1))


async def newest_writing_run_id(session: AsyncSession, integration: str) -> int:
    """The id of the newest run of ``integration`` that wrote rows: it changes exactly when
    the data does."""
    version = await session.scalar(
        select(func.max(IntegrationRun.id)).where(
            IntegrationRun.integration == integration, IntegrationRun.rows_written > 0
        )
    )
    return int(version or 0)


async def run_outcomes(session: AsyncSession) -> dict[tuple[str, str, str], int]:
    rows = await session.execute(
        select(
            IntegrationRun.integration, IntegrationRun.kind, IntegrationRun.status, func.count()
        ).group_by(IntegrationRun.integration, IntegrationRun.kind, IntegrationRun.status)
    )
    return {(integration, kind, status): n for integration, kind, status, n in rows.all()}


async def last_success_times(session: AsyncSession) -> dict[tuple[str, str], datetime]:
    rows = await session.execute(
        select(
            IntegrationRun.integration, IntegrationRun.kind, func.max(IntegrationRun.finished_at)
        )
        .where(IntegrationRun.status == RunStatus.succeeded.value)
        .group_by(IntegrationRun.integration, IntegrationRun.kind)
    )
    return {(integration, kind): at for integration, kind, at in rows.all() if at is not None}


async def add_dead_letters(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    session.add_all(DeadLetter(**row) for row in rows)
    await session.flush()


async def resolve_dead_letters(
    session: AsyncSession,
    integration: str,
    kind: str,
    external_ids: Sequence[str],
    now: datetime,
    resolution: str,
) -> None:
    for start in range(0, len(external_ids), 500):
        await session.execute(
            update(DeadLetter)
            .where(
                DeadLetter.integration == integration,
                DeadLetter.kind == kind,
                one_of(session, DeadLetter.external_id, external_ids[start : start + 500]),
                DeadLetter.resolved_at.is_(None),
            )
            .values(resolved_at=now, resolution=resolution)
        )


async def list_dead_letters(
    session: AsyncSession,
    integration: str,
    *,
    kinds: Sequence[str] | None = None,
    run_id: int | None = None,
    unresolved_only: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[DeadLetter]]:
    query = select(DeadLetter).where(DeadLetter.integration == integration)
    if kinds is not None:
        query = query.where(DeadLetter.kind.in_(kinds))
    if run_id is not None:
        query = query.where(DeadLetter.run_id == run_id)
    if unresolved_only:
        query = query.where(DeadLetter.resolved_at.is_(None))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(DeadLetter.id.desc()).limit(limit).offset(offset))
    return int(total or 0), list(rows.all())


async def unresolved_dead_letters(session: AsyncSession) -> dict[tuple[str, str], int]:
    rows = await session.execute(
        select(DeadLetter.integration, DeadLetter.kind, func.count())
        .where(DeadLetter.resolved_at.is_(None))
        .group_by(DeadLetter.integration, DeadLetter.kind)
    )
    return {(integration, kind): n for integration, kind, n in rows.all()}
