"""The job system's queries outside the queue itself: schedules, and jobs as operators read
them (``queue.py`` holds the queue's own: enqueue, claim, complete, fail, reap)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.jobs.models import Job, JobState, Schedule
from junction.platform.jobs.registry import ScheduleDefinition


async def store_schedule(
    session: AsyncSession, definition: ScheduleDefinition, now: datetime
) -> None:
    """Insert the schedule, or restart its timetable when its spec or job changed."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(Schedule)
        .values(
            name=definition.name,
            job_name=definition.job_name,
            spec=definition.spec,
            next_run_at=definition.first_run(now),
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )
    changed = (Schedule.name == definition.name) & (
        (Schedule.spec != definition.spec) | (Schedule.job_name != definition.job_name)
    )
    await session.execute(
        update(Schedule)
        .where(changed)
        .values(
            spec=definition.spec,
            job_name=definition.job_name,
            next_run_at=definition.first_run(now),
            updated_at=now,
        )
    )
    if definition.run_on_first_start:
        # Never fired here (a new database, or a schedule new to it): due now. Once it
        # fires, last_run_at is set and this matches nothing, in any scheduler.
        await session.execute(
            update(Schedule)
            .where(
                Schedule.name == definition.name,
                Schedule.last_run_at.is_(None),
                Schedule.next_run_at > now,
            )
            .values(next_run_at=now, updated_at=now)
        )
    if definition.spec.startswith("once:"):
        # Armed again by each start, unless a start before us already armed it.
        await session.execute(
            update(Schedule)
            .where(Schedule.name == definition.name, Schedule.next_run_at.is_(None))
            .values(next_run_at=definition.first_run(now), updated_at=now)
        )


async def due_schedules(
    session: AsyncSession, names: Collection[str], now: datetime
) -> list[Row[str, datetime | None]]:
    """(name, next_run_at) of each of the schedules ``names`` that is due at ``now``."""
    rows = await session.execute(
        select(Schedule.name, Schedule.next_run_at).where(
            Schedule.next_run_at <= now, Schedule.name.in_(list(names))
        )
    )
    return list(rows.all())


async def claim_tick(
    session: AsyncSession, definition: ScheduleDefinition, due_at: datetime, now: datetime
) -> bool:
    """Move the schedule's tick due at ``due_at`` on to its next one; False when another
    scheduler already did (a compare-and-set on ``next_run_at``)."""
    claimed = await session.execute(
        update(Schedule)
        .where(Schedule.name == definition.name, Schedule.next_run_at == due_at)
        .values(last_run_at=now, next_run_at=definition.next_run(now), updated_at=now)
    )
    return getattr(claimed, "rowcount", 0) == 1


async def record_schedule_job(session: AsyncSession, name: str, job_id: int) -> None:
    await session.execute(update(Schedule).where(Schedule.name == name).values(last_job_id=job_id))


async def next_tick_at(session: AsyncSession, names: Collection[str]) -> datetime | None:
    """The earliest ``next_run_at`` of the schedules ``names``."""
    next_at: datetime | None = await session.scalar(
        select(func.min(Schedule.next_run_at)).where(Schedule.name.in_(list(names)))
    )
    return next_at


async def list_schedules(session: AsyncSession) -> list[Schedule]:
    return list((await session.scalars(select(Schedule).order_by(Schedule.name))).all())


async def newest_jobs(
    session: AsyncSession,
    limit: int,
    *,
    state: JobState | None = None,
    queue: str | None = None,
) -> list[Job]:
    """The newest jobs, of ``state`` and of ``queue`` when given."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Job.state == state.value)
    if queue is not None:
        query = query.where(Job.queue == queue)
    return list((await session.scalars(query)).all())


async def job_by_id(session: AsyncSession, job_id: int) -> Job | None:
    return await session.get(Job, job_id)
