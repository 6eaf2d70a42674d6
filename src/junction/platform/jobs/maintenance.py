"""The job system's own jobs: pruning finished jobs after their retention period.

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
from junction.platform.jobs.registry import JobContext, JobRegistry, registry
from junction.settings import Settings

PRUNE_JOB = "jobs.prune"


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


def schedule_maintenance(jobs_registry: JobRegistry, settings: Settings) -> None:
    jobs_registry.schedule(PRUNE_JOB, PRUNE_JOB, every=settings.job_prune_interval_seconds)
