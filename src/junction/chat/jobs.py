"""The chat domain's jobs: the counts after a create, and the hourly reconciliation."""

from __future__ import annotations

from datetime import timedelta

from junction.chat import service
from junction.platform.jobs import JobContext, registry

COUNTS_JOBS_KEPT = timedelta(hours=1)


# One per active chat every five seconds: kept for days, as other jobs are, they would be
# most of the jobs table; a client reads a create's job status soon after its 202.
@registry.job(service.REFRESH_COUNTS_JOB, max_attempts=5, retention=COUNTS_JOBS_KEPT)
async def refresh_counts(job: JobContext) -> dict[str, int]:
    async with job.database.transaction() as session:
        return await service.refresh_counts(session, job.payload)


@registry.job(service.RECONCILE_COUNTS_JOB, max_attempts=3, timeout_seconds=1800)
async def reconcile_counts(job: JobContext) -> dict[str, int]:
    async with job.database.transaction() as session:
        return await service.reconcile_counts(session)


registry.schedule(service.RECONCILE_COUNTS_JOB, service.RECONCILE_COUNTS_JOB, cron="0 * * * *")
