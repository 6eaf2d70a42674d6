"""The scheduler: enqueues the registered schedules' jobs when they are due.

Schedules live in ``job_schedules``. Firing a tick is a compare-and-set on the row's
``next_run_at`` in the same transaction as the enqueue, so with any number of scheduler
processes each tick fires exactly once, and its job exists exactly when the tick is
recorded. The next tick is computed from the time of firing, not from the missed tick:
after downtime a schedule runs once, not once per missed tick. A schedule marked
``run_on_first_start`` that has never fired is due as soon as a scheduler stores it. The
scheduler also reaps jobs whose worker died, so a deployment with no live worker still
frees unique keys.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import Database, utcnow
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.models import Schedule
from junction.platform.jobs.registry import JobRegistry, ScheduleDefinition, registry
from junction.settings import Settings

log = structlog.get_logger(__name__)


class Scheduler:
    def __init__(
        self, database: Database, settings: Settings, *, jobs_registry: JobRegistry = registry
    ) -> None:
        self.database = database
        self.settings = settings
        self.registry = jobs_registry
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await self.sync()
        log.info("scheduler started", schedules=sorted(self.registry.schedules))
        reaped_at = 0.0
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                await self.tick()
                if loop.time() - reaped_at >= self.settings.job_heartbeat_seconds:
                    reaped_at = loop.time()
                    async with self.database.transaction() as session:
                        await job_queue.reap(session)
                pause = await self._seconds_until_next_tick()
            except Exception:
                log.exception("scheduler tick failed")
                pause = self.settings.job_poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)
        log.info("scheduler stopped")

    async def sync(self) -> None:
        """Store every registered schedule; a changed spec restarts its timetable."""
        for definition in self.registry.schedules.values():
            async with self.database.transaction() as session:
                await _sync_one(session, definition)

    async def tick(self) -> int:
        """Fire every due schedule that this process knows; returns how many it fired."""
        now = utcnow()
        async with self.database.reading() as session:
            due = (
                await session.execute(
                    select(Schedule.name, Schedule.next_run_at).where(
                        Schedule.next_run_at <= now,
                        Schedule.name.in_(list(self.registry.schedules)),
                    )
                )
            ).all()
        fired = 0
        for name, due_at in due:
            assert due_at is not None
            async with self.database.transaction() as session:
                fired += await self._fire(session, self.registry.schedules[name], due_at)
        return fired

    async def _fire(
        self, session: AsyncSession, definition: ScheduleDefinition, due_at: datetime
    ) -> int:
        now = utcnow()
        claimed = await session.execute(
            update(Schedule)
            .where(Schedule.name == definition.name, Schedule.next_run_at == due_at)
            .values(last_run_at=now, next_run_at=definition.next_run(now), updated_at=now)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return 0  # another scheduler fired this tick
        # run_at is the tick itself: one job per tick, recognisable as such.
        job = await job_queue.enqueue(
            session,
            definition.job_name,
            definition.payload,
            run_at=due_at,
            unique_key=definition.unique_key,
            jobs_registry=self.registry,
        )
        await session.execute(
            update(Schedule).where(Schedule.name == definition.name).values(last_job_id=job.id)
        )
        log.info(
            "schedule fired", schedule=definition.name, due_at=due_at.isoformat(), job_id=job.id
        )
        return 1

    async def _seconds_until_next_tick(self) -> float:
        async with self.database.reading() as session:
            next_at = await session.scalar(
                select(func.min(Schedule.next_run_at)).where(
                    Schedule.name.in_(list(self.registry.schedules))
                )
            )
        poll = self.settings.job_poll_seconds
        if next_at is None:
            return poll
        return min(max((next_at - utcnow()).total_seconds(), 0.0), poll)


async def _sync_one(session: AsyncSession, definition: ScheduleDefinition) -> None:
    now = utcnow()
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


async def list_schedules(session: AsyncSession) -> list[Schedule]:
    return list((await session.scalars(select(Schedule).order_by(Schedule.name))).all())
