"""Queues paused for every worker process, and finished jobs rolled up per minute."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import delete, select, update

from junction.platform.db import Database, utcnow
from junction.platform.jobs import enqueue
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.maintenance import ROLL_UP_JOB
from junction.platform.jobs.models import Job, JobMinute, JobState
from junction.settings import Settings
from tests.support.processes import junction_process, started
from tests.support.queue import finished_jobs, jobs_by_id
from tests.support.workers import worker_running


async def _set_paused(database: Database, paused: bool) -> None:
    async with database.transaction() as session:
        await job_queue.set_paused(session, "default", paused)


async def test_workers_in_other_processes_skip_a_paused_queue_until_resumed(
    job_settings: Settings, database: Database
) -> None:
    await _set_paused(database, True)
    with (
        junction_process(job_settings, "worker") as first,
        junction_process(job_settings, "worker") as second,
    ):
        await started(first, "worker started")
        await started(second, "worker started")
        async with database.transaction() as session:
            ids = [(await enqueue(session, "tests.noop", {"n": n})).id for n in range(5)]
            sync_job = (await enqueue(session, "tests.noop", None, queue="sync")).id
        await finished_jobs(database, [sync_job])  # the other queue runs meanwhile
        await asyncio.sleep(1.0)  # five polls of each worker
        assert {job.state for job in (await jobs_by_id(database)).values() if job.id in ids} == {
            JobState.queued.value
        }
        await _set_paused(database, False)
        done = await finished_jobs(database, ids)
    assert {job.state for job in done} == {JobState.succeeded.value}


async def _minutes(database: Database) -> dict[tuple[str, str], tuple[int, int]]:
    async with database.reading() as session:
        rows = (await session.scalars(select(JobMinute))).all()
    return {(r.minute.strftime("%H:%M"), r.queue): (r.succeeded, r.dead) for r in rows}


async def _roll_up(database: Database, settings: Settings) -> None:
    async with database.transaction() as session:
        roll_up = await enqueue(session, ROLL_UP_JOB)
    async with worker_running(database, settings, ["default:1"]):
        await finished_jobs(database, [roll_up.id])


async def test_finished_jobs_roll_up_per_minute_and_outlive_their_pruning(
    settings: Settings, database: Database
) -> None:
    minute = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=10)
    async with database.transaction() as session:
        ids = [(await enqueue(session, "tests.noop", None)).id for _ in range(5)]
        states = [JobState.succeeded, JobState.succeeded, JobState.dead, JobState.succeeded]
        for job_id, state, offset in zip(ids, states, (1, 30, 59, 61), strict=False):
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(state=state.value, finished_at=minute + timedelta(seconds=offset))
            )
        session.add(
            JobMinute(minute=minute - timedelta(days=31), queue="default", succeeded=9, dead=0)
        )
    await _roll_up(database, settings)
    first, second = minute.strftime("%H:%M"), (minute + timedelta(minutes=1)).strftime("%H:%M")
    rolled = await _minutes(database)
    assert rolled[(first, "default")] == (2, 1)
    assert rolled[(second, "default")] == (1, 0)
    # Past its retention (30 days by default), the old minute is gone; the current minute,
    # in which the roll-up job itself finished, waits for the next roll-up.
    assert set(rolled) == {(first, "default"), (second, "default")}
    async with database.transaction() as session:
        await session.execute(delete(Job).where(Job.id.in_(ids)))
    await _roll_up(database, settings)
    after_pruning = await _minutes(database)
    assert after_pruning[(first, "default")] == (2, 1)
    assert after_pruning[(second, "default")] == (1, 0)
