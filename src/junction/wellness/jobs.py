"""The wellness sync's jobs and schedules, on the ``sync`` queue (served before ``default``).

The scheduler fires ``wellness.scheduled_sync``, which only enqueues ``wellness.sync`` under
the kind's unique key: a scheduled tick, a manual trigger and a retry then share one
queued-or-running sync instead of piling up. A run that failed for a reason a later
attempt may not meet (429, 5xx, timeouts) fails its job, so the job system retries it with
backoff; wrong credentials or a wrong URL do not retry: the run says what to fix.

Each run's progress and result go to ``SyncStatusChannel`` after each commit, through the
sync kit's publisher and the job's broker.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.integrations import (
    DeadLetter,
    IntegrationEntry,
    RunFailed,
    SyncStatusPublisher,
    SyncTrigger,
    catalog,
)
from junction.platform.jobs import Backoff, JobContext, registry
from junction.settings import Settings, get_settings
from junction.wellness.models import SyncKind
from junction.wellness.service import (
    INTEGRATION,
    SCHEDULE_NAMES,
    SCHEDULED_SYNC_JOB,
    SYNC_JOB,
    SyncEngine,
    SyncRequest,
    sync_unique_key,
    trigger_sync,
)

log = structlog.get_logger(__name__)


@registry.job(
    SYNC_JOB,
    queue="sync",
    max_attempts=3,
    timeout_seconds=6 * 3600,
    backoff=Backoff(base_seconds=60, max_seconds=900),
)
async def run_sync(job: JobContext) -> dict[str, Any]:
    payload = job.payload or {}
    request = SyncRequest(
        kind=SyncKind(payload["kind"]),
        trigger=str(payload.get("trigger", "manual")),
        full=bool(payload.get("full", False)),
        job_id=job.id,
    )
    async with SyncStatusPublisher(job.broker) as publisher:
        report = await SyncEngine(job.database, job.settings, observe=publisher).run(request)
    if report.retryable:
        raise RunFailed(f"{request.kind.value} sync run {report.run_id} failed: {report.error}")
    summary: dict[str, Any] = to_jsonable_python(report.as_message())
    summary.pop("type")
    return summary


@registry.job(SCHEDULED_SYNC_JOB, queue="sync", max_attempts=5)
async def enqueue_scheduled_sync(job: JobContext) -> dict[str, Any]:
    kind = SyncKind((job.payload or {})["kind"])
    async with job.database.transaction() as session:
        enqueued = await trigger_sync(session, kind, trigger="schedule")
    return {"kind": kind.value, "job_id": enqueued.id, "created": enqueued.created}


def _register_schedules(settings: Settings) -> None:
    crons = {
        SyncKind.clients: settings.wellness_clients_cron,
        SyncKind.appointments: settings.wellness_appointments_cron,
    }
    for kind, cron in crons.items():
        # A new deployment (or the demo) syncs at once, not up to six hours later.
        registry.schedule(
            SCHEDULE_NAMES[kind],
            SCHEDULED_SYNC_JOB,
            cron=cron,
            payload={"kind": kind.value},
            run_on_first_start=True,
        )


_register_schedules(get_settings())


async def replay_set_aside(session: AsyncSession, job: JobContext, letter: DeadLetter) -> None:
    engine = SyncEngine(job.database, job.settings)
    await engine.replay(session, SyncKind(letter.kind), letter.payload)


def _console_trigger(kind: SyncKind, full: bool) -> SyncTrigger:
    return SyncTrigger(
        f"{kind.value}{' (full)' if full else ''}",
        SYNC_JOB,
        {"kind": kind.value, "trigger": "console", "full": full},
        unique_key=sync_unique_key(kind, full),
    )


catalog.register(
    IntegrationEntry(
        INTEGRATION,
        "Wellness",
        tuple(_console_trigger(kind, full) for kind in SyncKind for full in (False, True)),
        replay=replay_set_aside,
    )
)
