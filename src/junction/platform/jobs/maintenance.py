"""The job system's own jobs: pruning finished jobs after the retention period.

Dead jobs are never pruned: they wait for an operator to retry or discard them.
"""

from __future__ import annotations

from datetime import timedelta

from junction.platform.db import utcnow
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.registry import JobContext, JobRegistry, registry
from junction.settings import Settings

PRUNE_JOB = "jobs.prune"


@registry.job(PRUNE_JOB, max_attempts=3)
async def prune_finished_jobs(job: JobContext) -> dict[str, int]:
    cutoff = utcnow() - timedelta(days=job.settings.job_retention_days)
    deleted = 0
    while True:
        # One batch per transaction keeps each write short (SQLite has one writer).
        async with job.database.transaction() as session:
            batch = await job_queue.prune(session, cutoff)
        deleted += batch
        if batch == 0:
            return {"deleted": deleted}


def schedule_maintenance(jobs_registry: JobRegistry, settings: Settings) -> None:
    jobs_registry.schedule(PRUNE_JOB, PRUNE_JOB, every=settings.job_prune_interval_seconds)
