"""The job system's own jobs: pruning finished jobs after their retention period, and
rolling finished jobs up into counts per minute (``job_minutes``) before they are pruned.

A job's definition may keep its finished jobs for less (or more) than the default
``JUNCTION_JOB_RETENTION_DAYS``: the chat's counts jobs, one per active chat every few
seconds, are kept an hour. Dead jobs are never pruned: they wait for an operator to retry
or discard them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from junction.platform.db import utcnow
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs import repository
from junction.platform.jobs.registry import JobContext, JobRegistry, registry
from junction.settings import Settings

PRUNE_JOB = "jobs.prune"
ROLL_UP_JOB = "jobs.roll_up_minutes"
ROLL_UP_SECONDS = 60.0
# Minutes counted again at each roll-up: a job whose transaction committed a little after
# the minute it finished in was not there to count the first time.
RECOUNTED = timedelta(minutes=2)
FIRST_ROLL_UP = timedelta(days=1)


@registry.job(PRUNE_JOB, max_attempts=3)
async def prune_finished_jobs(job: JobContext) -> dict[str, int]:
    """Every job past its retention: its definition's own, or the default for the rest."""
    now = utcnow()
    own = {d.name: d.retention for d in registry.jobs.values() if d.retention is not None}
    default = now - timedelta(days=job.settings.job_retention_days)
    deleted = await _prune(job, default, other_than=sorted(own))
    for name, retention in sorted(own.items()):
        deleted += await _prune(job, now - retention, names=[name])
    return {"deleted": deleted}


async def _prune(
    job: JobContext, older_than: datetime, names: Sequence[str] = (), other_than: Sequence[str] = ()
) -> int:
    deleted = 0
    while True:
        # One batch per transaction keeps each write short (SQLite has one writer).
        async with job.database.transaction() as session:
            batch = await job_queue.prune(session, older_than, names=names, other_than=other_than)
        deleted += batch
        if batch == 0:
            return deleted


@registry.job(ROLL_UP_JOB, max_attempts=3)
async def roll_up_minutes(job: JobContext) -> dict[str, int]:
    """Count the jobs finished in each whole minute since the last roll-up; drop counts past
    their retention."""
    now = utcnow()
    until = now.replace(second=0, microsecond=0)
    async with job.database.transaction() as session:
        last = await repository.last_rolled_minute(session)
        since = until - FIRST_ROLL_UP if last is None else last - RECOUNTED
        rows = await repository.roll_up_minutes(session, since, until)
        retention = timedelta(days=job.settings.job_minutes_retention_days)
        await repository.prune_minutes(session, now - retention)
    return {"rows": rows}


def schedule_maintenance(jobs_registry: JobRegistry, settings: Settings) -> None:
    jobs_registry.schedule(PRUNE_JOB, PRUNE_JOB, every=settings.job_prune_interval_seconds)
    jobs_registry.schedule(ROLL_UP_JOB, ROLL_UP_JOB, every=ROLL_UP_SECONDS)
