"""The events sync job and its schedules: every ``events_sync_interval_seconds`` and once
``events_sync_first_run_seconds`` after the scheduler starts (seed 002).

A failed fetch or a refused feed is a finished job whose run says "failed": the outbound
client has already retried, and the next tick comes in five minutes. Only an unexpected
error (the database gone) fails the job, so the job system retries it.

The run's report goes to ``SyncStatusChannel`` once it is opened and once it is finished,
after each commit, through the job's broker (see ``SyncStatusPublisher``).
"""

from __future__ import annotations

from typing import Any

from junction.events import service
from junction.platform.integrations import (
    IntegrationEntry,
    SyncStatusPublisher,
    SyncTrigger,
    catalog,
)
from junction.platform.jobs import Backoff, JobContext, registry
from junction.settings import get_settings

FIRST_RUN_SCHEDULE = "events.sync.first"
INTERVAL_SCHEDULE = "events.sync.interval"


@registry.job(
    service.SYNC_JOB,
    queue="sync",
    max_attempts=3,
    timeout_seconds=600,
    backoff=Backoff(base_seconds=10.0, max_seconds=120.0),
)
async def sync_events(job: JobContext) -> dict[str, Any]:
    trigger = "api"
    if isinstance(job.payload, dict):
        trigger = str(job.payload.get("trigger", "schedule"))
    async with SyncStatusPublisher(job.broker) as publisher:
        run = await service.run_sync(
            job.database, job.settings, trigger, observe=publisher, job_id=job.id
        )
    return {"run_id": run.id, "status": run.status, "skipped": run.skipped}


_settings = get_settings()
registry.schedule(
    INTERVAL_SCHEDULE,
    service.SYNC_JOB,
    every=_settings.events_sync_interval_seconds,
    payload={"trigger": "schedule"},
    unique_key=service.SYNC_JOB,
)
registry.schedule(
    FIRST_RUN_SCHEDULE,
    service.SYNC_JOB,
    once_after=_settings.events_sync_first_run_seconds,
    payload={"trigger": "startup"},
    unique_key=service.SYNC_JOB,
)
# No replay: a record set aside is a piece of one feed document (a base event, a slot, a
# zone); the provider sends it again, fixed or not, in every pull. Dismiss it once seen.
catalog.register(
    IntegrationEntry(
        service.INTEGRATION,
        "Provider feed",
        (
            SyncTrigger(
                "pull now", service.SYNC_JOB, {"trigger": "console"}, unique_key=service.SYNC_JOB
            ),
        ),
    )
)
