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
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import Database, utcnow
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs import repository
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
                await repository.store_schedule(session, definition, utcnow())

    async def tick(self) -> int:
        """Fire every due schedule that this process knows; returns how many it fired."""
        now = utcnow()
        async with self.database.reading() as session:
            due = await repository.due_schedules(session, self.registry.schedules, now)
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
        if not await repository.claim_tick(session, definition, due_at, now):
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
        await repository.record_schedule_job(session, definition.name, job.id)
        log.info(
            "schedule fired", schedule=definition.name, due_at=due_at.isoformat(), job_id=job.id
        )
        return 1

    async def _seconds_until_next_tick(self) -> float:
        async with self.database.reading() as session:
            next_at = await repository.next_tick_at(session, self.registry.schedules)
        poll = self.settings.job_poll_seconds
        if next_at is None:
            return poll
        return min(max((next_at - utcnow()).total_seconds(), 0.0), poll)
