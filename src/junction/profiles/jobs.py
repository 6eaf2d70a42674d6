"""The profiles domain's jobs: the Airtable sync, its minute sweep, and file deletion."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.integrations import (
    DeadLetter,
    IntegrationEntry,
    SyncStatusPublisher,
    SyncTrigger,
    catalog,
)
from junction.platform.integrations.records import RecordRejected
from junction.platform.jobs import Backoff, JobContext, enqueue, registry
from junction.platform.storage import open_storage
from junction.profiles import repository
from junction.profiles.airtable import airtable_connection
from junction.profiles.models import SyncStatus
from junction.profiles.service import DELETE_FILE_JOB, SYNC_JOB
from junction.profiles.sync import INTEGRATION, MAX_ATTEMPTS, UserSync
from junction.settings import Settings

SWEEP_JOB = "profiles.sweep_airtable"


def airtable_configured(settings: Settings) -> bool:
    return airtable_connection(settings) is not None


# Retries 2, 4, 8 ... s apart (+/- 25 %): never sooner than the user's own next attempt.
@registry.job(
    SYNC_JOB,
    queue="sync",
    max_attempts=MAX_ATTEMPTS,
    timeout_seconds=300,
    backoff=Backoff(base_seconds=2.0, max_seconds=600.0),
)
async def sync_airtable(job: JobContext) -> dict[str, Any]:
    if not airtable_configured(job.settings):
        return {"skipped": "Airtable is not configured (AIRTABLE_API_KEY, AIRTABLE_BASE_ID)"}
    storage = open_storage(job.settings)
    try:
        async with SyncStatusPublisher(job.broker) as publisher:
            sync = UserSync(
                job.database,
                job.settings,
                storage,
                cache=job.cache,
                broker=job.broker,
                redis=job.redis,
                observe=publisher,
            )
            user_id = (job.payload or {}).get("user_id")
            report = await sync.drain(user_id if isinstance(user_id, int) else None)
    finally:
        await storage.close()
    return report.as_dict()


@registry.job(SWEEP_JOB, queue="sync", max_attempts=1)
async def sweep_airtable(job: JobContext) -> dict[str, Any]:
    """Start a sync for users still waiting (a retry due, a job that gave up, a new key)."""
    if not airtable_configured(job.settings):
        return {"due": 0}
    async with job.database.transaction() as session:
        due = await repository.count_due(session)
        if due:
            await enqueue(session, SYNC_JOB, {"user_id": None}, unique_key=f"{SYNC_JOB}:sweep")
    return {"due": due}


@registry.job(DELETE_FILE_JOB, max_attempts=10)
async def delete_file(job: JobContext) -> dict[str, Any]:
    storage = open_storage(job.settings)
    try:
        await storage.delete(job.payload["key"])
    finally:
        await storage.close()
    return {"deleted": job.payload["key"]}


async def replay_rejected_user(session: AsyncSession, job: JobContext, letter: DeadLetter) -> None:
    """A user Airtable refused: back to pending with fresh attempts, and a sync for it."""
    user = await repository.user_by_uuid(session, str(letter.external_id))
    if user is None:
        raise RecordRejected(letter.external_id, "the user no longer exists")
    if user.synced_version < user.sync_version:
        user.sync_status = SyncStatus.pending.value
        user.sync_attempts = 0
        user.sync_error = None
        user.sync_next_attempt_at = None
        await enqueue(session, SYNC_JOB, {"user_id": user.id})


registry.schedule(SWEEP_JOB, SWEEP_JOB, cron="* * * * *")
catalog.register(
    IntegrationEntry(
        INTEGRATION,
        "Airtable",
        (SyncTrigger("push waiting users", SWEEP_JOB, {}, unique_key=SWEEP_JOB),),
        replay=replay_rejected_user,
    )
)
