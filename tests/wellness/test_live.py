"""Each run's progress and result reach SyncStatusChannel's stream through the worker's
broker: in-process when embedded, Redis (reaching every web process) when configured."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from junction.emulators.wellness import WellnessEmulator
from junction.platform.db import Database
from junction.platform.integrations import SYNC_STATUS_STREAM
from junction.platform.realtime.broker import create_broker
from junction.settings import Settings
from junction.wellness.models import SyncKind
from junction.wellness.service import trigger_sync
from tests.support.environment import TEST_REDIS_URL
from tests.support.queue import finished_jobs
from tests.support.workers import worker_running


async def test_a_run_publishes_its_progress_and_result(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    redis = Redis.from_url(TEST_REDIS_URL) if TEST_REDIS_URL else None
    broker = create_broker(redis, replay_size=100)
    try:
        async with database.transaction() as session:
            job = await trigger_sync(session, SyncKind.clients, trigger="manual")
        async with worker_running(database, settings, broker=broker):
            await finished_jobs(database, {job.id})
        messages = [json.loads(b.payload) for b in await broker.replay(SYNC_STATUS_STREAM, 0)]
    finally:
        await broker.close()
        if redis is not None:
            await redis.aclose()

    assert messages[0]["status"] == "running"
    assert messages[-1]["status"] == "succeeded"
    assert messages[-1]["counts"]["created"] == 40
    progress = [m["counts"]["fetched"] for m in messages if m["status"] == "running"]
    assert progress == sorted(progress)
    assert progress[-1] == 40  # one message per page landed, then the result
    assert all(m["type"] == "wellness_sync" and m["kind"] == "clients" for m in messages)
    assert messages[-1]["finished_at"].endswith("Z")
