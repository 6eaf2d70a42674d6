"""Reading the job queue's table, and waiting for its jobs to finish."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select

from junction.platform.db import Database
from junction.platform.jobs.models import Job
from tests.support.waiting import eventually

FINISHED = ("succeeded", "dead")


async def jobs_by_id(database: Database) -> dict[int, Job]:
    async with database.reading() as session:
        return {job.id: job for job in (await session.scalars(select(Job))).all()}


async def job(database: Database, job_id: int) -> Job:
    async with database.reading() as session:
        found = await session.get(Job, job_id)
    assert found is not None
    return found


async def jobs_settled(database: Database, timeout: float = 30) -> list[Job]:
    """Wait until no job is queued or running; answers every job."""
    jobs: list[Job] = []

    async def settled() -> bool:
        nonlocal jobs
        async with database.reading() as session:
            jobs = list((await session.scalars(select(Job))).all())
        return all(job.state in FINISHED for job in jobs)

    await eventually(
        settled,
        timeout=timeout,
        what=lambda: f"every job settling (pending: {[(j.name, j.state) for j in jobs]})",
    )
    return jobs


async def finished_jobs(database: Database, ids: Collection[int], timeout: float = 30) -> list[Job]:
    """Wait until the jobs ``ids`` have all succeeded or died; answers them."""
    jobs: list[Job] = []

    async def finished() -> bool:
        nonlocal jobs
        async with database.reading() as session:
            jobs = list((await session.scalars(select(Job).where(Job.id.in_(ids)))).all())
        return bool(jobs) and all(job.state in FINISHED for job in jobs)

    await eventually(
        finished,
        timeout=timeout,
        what=lambda: f"jobs {ids} finishing (states: {[j.state for j in jobs]})",
    )
    return jobs
