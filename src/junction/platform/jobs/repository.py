"""The job system's queries outside the queue itself: schedules, and jobs as operators read
them (``queue.py`` holds the queue's own: enqueue, claim, complete, fail, reap)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import utcnow
from junction.platform.jobs.models import Job, JobMinute, JobState, Schedule
from junction.platform.jobs.registry import ScheduleDefinition
from junction.platform.sql import insert_for


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
            Schedule.next_run_at <= now, Schedule.name.in_(list(names)), Schedule.enabled
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
        .where(Schedule.name == definition.name, Schedule.next_run_at == due_at, Schedule.enabled)
        .values(last_run_at=now, next_run_at=definition.next_run(now), updated_at=now)
    )
    return getattr(claimed, "rowcount", 0) == 1


async def record_schedule_job(session: AsyncSession, name: str, job_id: int) -> None:
    await session.execute(update(Schedule).where(Schedule.name == name).values(last_job_id=job_id))


async def next_tick_at(session: AsyncSession, names: Collection[str]) -> datetime | None:
    """The earliest ``next_run_at`` of the schedules ``names``."""
    next_at: datetime | None = await session.scalar(
        select(func.min(Schedule.next_run_at)).where(
            Schedule.name.in_(list(names)), Schedule.enabled
        )
    )
    return next_at


async def list_schedules(session: AsyncSession) -> list[Schedule]:
    return list((await session.scalars(select(Schedule).order_by(Schedule.name))).all())


async def schedule_by_name(session: AsyncSession, name: str) -> Schedule | None:
    return await session.get(Schedule, name)


async def set_schedule_enabled(session: AsyncSession, name: str, enabled: bool) -> bool:
    """Enable or disable a schedule in every scheduler; False when there is no such one."""
    result = await session.execute(
        update(Schedule).where(Schedule.name == name).values(enabled=enabled, updated_at=utcnow())
    )
    return getattr(result, "rowcount", 0) == 1


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


def _minute_of(session: AsyncSession, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("minute", column)
    return func.substr(column, 1, 16)  # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff'


def _as_minute(value: datetime | str) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


async def roll_up_minutes(session: AsyncSession, since: datetime, until: datetime) -> int:
    """Count the jobs that finished (succeeded, dead) per minute and queue in [since, until)
    into ``job_minutes``, replacing what an earlier roll-up counted there; returns the rows."""
    minute = _minute_of(session, Job.finished_at).label("minute")
    finished = await session.execute(
        select(
            minute,
            Job.queue,
            func.count().filter(Job.state == JobState.succeeded.value),
            func.count().filter(Job.state == JobState.dead.value),
        )
        .where(
            Job.state.in_((JobState.succeeded.value, JobState.dead.value)),
            Job.finished_at >= since,
            Job.finished_at < until,
        )
        .group_by(minute, Job.queue)
    )
    rows = [
        {"minute": _as_minute(at), "queue": queue, "succeeded": ok, "dead": dead}
        for at, queue, ok, dead in finished
    ]
    if rows:
        statement = insert_for(session, JobMinute)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["minute", "queue"],
                set_={"succeeded": statement.excluded.succeeded, "dead": statement.excluded.dead},
            ),
            rows,
        )
    return len(rows)


async def last_rolled_minute(session: AsyncSession) -> datetime | None:
    last: datetime | None = await session.scalar(select(func.max(JobMinute.minute)))
    return last


async def prune_minutes(session: AsyncSession, older_than: datetime) -> None:
    await session.execute(delete(JobMinute).where(JobMinute.minute < older_than))


async def minutes_since(session: AsyncSession, since: datetime) -> list[JobMinute]:
    rows = await session.scalars(
        select(JobMinute).where(JobMinute.minute >= since).order_by(JobMinute.minute)
    )
    return list(rows.all())
