"""Schedules: each tick fires once across schedulers; missed ticks collapse to one run."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from junction.platform.db import Database, utcnow
from junction.platform.jobs import enqueue
from junction.platform.jobs.models import Job, Schedule
from junction.platform.jobs.registry import JobRegistry, ScheduleDefinition
from junction.platform.jobs.scheduler import Scheduler
from junction.settings import Settings
from tests.support.jobs import noop
from tests.support.processes import exit_code, junction_process
from tests.support.queue import jobs_by_id
from tests.support.schedules import TICK_SCHEDULE
from tests.support.waiting import eventually


def _registry(**schedule: object) -> JobRegistry:
    jobs = JobRegistry()
    jobs.job("tests.noop")(noop)
    jobs.schedule("tests.schedule", "tests.noop", **schedule)  # type: ignore[arg-type]
    return jobs


async def _schedule_row(database: Database, name: str = "tests.schedule") -> Schedule:
    async with database.reading() as session:
        row = await session.get(Schedule, name)
    assert row is not None
    return row


async def _fall_behind(database: Database, by: timedelta) -> None:
    """As if every scheduler had been down for ``by``."""
    async with database.transaction() as session:
        await session.execute(
            update(Schedule).values(next_run_at=utcnow() - by, last_run_at=utcnow() - 2 * by)
        )


@pytest.mark.parametrize("schedule", [{"every": 60}, {"cron": "*/5 * * * *"}])
async def test_missed_ticks_after_downtime_run_once(
    job_settings: Settings, database: Database, schedule: dict[str, object]
) -> None:
    scheduler = Scheduler(database, job_settings, jobs_registry=_registry(**schedule))
    await scheduler.sync()
    await _fall_behind(database, timedelta(days=1))
    assert await scheduler.tick() == 1
    assert await scheduler.tick() == 0
    row = await _schedule_row(database)
    assert row.next_run_at is not None
    assert row.next_run_at > utcnow()
    assert len(await jobs_by_id(database)) == 1
    assert row.last_job_id in await jobs_by_id(database)


async def test_concurrent_schedulers_fire_a_tick_once(
    job_settings: Settings, database: Database
) -> None:
    jobs = _registry(every=60)
    databases = [Database(job_settings) for _ in range(4)]
    schedulers = [Scheduler(d, job_settings, jobs_registry=jobs) for d in databases]
    try:
        await asyncio.gather(*(s.sync() for s in schedulers))
        await _fall_behind(database, timedelta(minutes=5))
        fired = await asyncio.gather(*(s.tick() for s in schedulers))
    finally:
        await asyncio.gather(*(d.dispose() for d in databases))
    assert sum(fired) == 1
    assert len(await jobs_by_id(database)) == 1


async def test_a_once_schedule_fires_once_per_start(
    job_settings: Settings, database: Database
) -> None:
    scheduler = Scheduler(database, job_settings, jobs_registry=_registry(once_after=0))
    await scheduler.sync()
    await scheduler.sync()  # a second scheduler starting at the same time
    assert await scheduler.tick() == 1
    assert await scheduler.tick() == 0
    assert (await _schedule_row(database)).next_run_at is None
    await scheduler.sync()  # the next start
    assert await scheduler.tick() == 1


async def test_a_schedule_waits_for_its_first_tick_by_default(
    job_settings: Settings, database: Database
) -> None:
    scheduler = Scheduler(database, job_settings, jobs_registry=_registry(cron="0 0 1 1 *"))
    await scheduler.sync()
    assert await scheduler.tick() == 0
    assert await jobs_by_id(database) == {}


async def test_a_first_start_schedule_fires_at_once_until_it_has_fired(
    job_settings: Settings, database: Database
) -> None:
    jobs = _registry(cron="0 0 1 1 *", run_on_first_start=True)
    scheduler = Scheduler(database, job_settings, jobs_registry=jobs)
    await scheduler.sync()
    await scheduler.sync()  # a second scheduler starting at the same time
    assert await scheduler.tick() == 1
    assert await scheduler.tick() == 0

    # The next start keeps the timetable: the schedule has fired on this database.
    await Scheduler(database, job_settings, jobs_registry=jobs).sync()
    assert await scheduler.tick() == 0
    row = await _schedule_row(database)
    assert row.next_run_at is not None
    assert (row.next_run_at.month, row.next_run_at.day, row.next_run_at.hour) == (1, 1, 0)
    assert len(await jobs_by_id(database)) == 1


async def test_a_tick_merges_into_a_queued_job_with_its_unique_key(
    job_settings: Settings, database: Database
) -> None:
    scheduler = Scheduler(
        database, job_settings, jobs_registry=_registry(every=60, unique_key="tests.only-one")
    )
    await scheduler.sync()
    async with database.transaction() as session:
        manual = await enqueue(session, "tests.noop", unique_key="tests.only-one")
    await _fall_behind(database, timedelta(minutes=5))
    assert await scheduler.tick() == 1
    assert list(await jobs_by_id(database)) == [manual.id]
    assert (await _schedule_row(database)).last_job_id == manual.id


async def test_a_changed_spec_reschedules(job_settings: Settings, database: Database) -> None:
    await Scheduler(database, job_settings, jobs_registry=_registry(every=3600)).sync()
    await Scheduler(database, job_settings, jobs_registry=_registry(cron="0 */6 * * *")).sync()
    row = await _schedule_row(database)
    assert row.spec == "cron:0 */6 * * *"
    assert row.next_run_at is not None
    assert row.next_run_at.hour % 6 == 0
    assert row.next_run_at.minute == 0


def test_cron_and_interval_next_runs() -> None:
    now = datetime(2026, 1, 1, 7, 3, tzinfo=UTC)
    every_six_hours = ScheduleDefinition("s", "j", "cron:0 */6 * * *")
    every_five_minutes = ScheduleDefinition("s", "j", "cron:*/5 * * * *")
    assert every_six_hours.next_run(now) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert every_five_minutes.next_run(now) == datetime(2026, 1, 1, 7, 5, tzinfo=UTC)
    assert ScheduleDefinition("s", "j", "every:90").next_run(now) == now + timedelta(seconds=90)
    assert ScheduleDefinition("s", "j", "once:10").next_run(now) is None


def test_invalid_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="cron"):
        JobRegistry().schedule("s", "j", cron="not a cron")
    with pytest.raises(ValueError, match="exactly one"):
        JobRegistry().schedule("s", "j", cron="* * * * *", every=5)
    with pytest.raises(ValueError, match="run_on_first_start"):
        JobRegistry().schedule("s", "j", once_after=5, run_on_first_start=True)


@pytest.mark.slow
async def test_two_scheduler_processes_fire_each_tick_once(
    job_settings: Settings, database: Database
) -> None:
    modules = {"JUNCTION_JOB_MODULES": "tests.support.jobs,tests.support.schedules"}
    with (
        junction_process(job_settings, "scheduler", **modules) as first,
        junction_process(job_settings, "scheduler", **modules) as second,
    ):

        async def ticks() -> list[Job] | None:
            jobs = [j for j in (await jobs_by_id(database)).values() if j.name == "tests.noop"]
            return jobs if len(jobs) >= 8 else None

        await eventually(ticks)
        for process in (first, second):
            process.popen.send_signal(signal.SIGTERM)
        assert await exit_code(first) == 0
        assert await exit_code(second) == 0
    async with database.reading() as session:
        fired = (await session.scalars(select(Job.run_at).where(Job.name == "tests.noop"))).all()
    # A scheduled job's run_at is its tick: a tick fired twice would show twice.
    assert [tick for tick, n in Counter(fired).items() if n > 1] == []
    assert (await _schedule_row(database, TICK_SCHEDULE)).last_job_id is not None
