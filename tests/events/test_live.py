"""A sync's run reaches SyncStatusChannel's subscribers through the worker's broker: the
web process's own when the worker is embedded, Redis when configured."""

from __future__ import annotations

import asyncio

import httpx

from junction.app import create_app
from junction.platform.auth import Scope
from junction.platform.db import Database
from junction.settings import Settings
from tests.support.events import bearer, feed_url
from tests.support.queue import finished_jobs
from tests.support.realtime import cable_client, serving
from tests.support.workers import worker_running

SYNC_STATUS = '{"channel":"SyncStatusChannel"}'


async def test_a_sync_publishes_its_run_on_the_sync_status_channel(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    configured = settings.model_copy(
        update={"provider_url": feed_url(provider_emulator, "mode=fixed&response=2")}
    )
    async with serving(create_app(configured)) as server:
        reader, syncer = await server.api_key(Scope.read), await server.api_key(Scope.sync)
        async with cable_client(f"{server.cable_url}?api_key={reader}") as client:
            assert (await client.next_frame())["type"] == "welcome"
            assert (await client.subscribe(SYNC_STATUS))["type"] == "confirm_subscription"
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                trigger = await http.post("/api/v1/events/sync", headers=bearer(syncer))
            async with worker_running(database, configured, app=server.app):
                (job,) = await finished_jobs(database, {trigger.json()["job_id"]})
                async with asyncio.timeout(10):  # next_frame waits anew after each ping
                    frames = [await client.next_frame() for _ in range(2)]

    assert job.result == {"run_id": job.result["run_id"], "status": "succeeded", "skipped": 1}
    opened, finished = (frame["message"] for frame in frames)
    assert (opened["status"], finished["status"]) == ("running", "succeeded")
    for message in (opened, finished):
        assert (message["type"], message["kind"], message["trigger"]) == (
            "events_sync", "feed", "api",
        )  # fmt: skip
        assert message["run_id"] == job.result["run_id"]
    assert finished["counts"]["set_aside"] == 1
    assert (finished["counts"]["created"], finished["counts"]["set_aside"]) == (2, 1)
    assert finished["finished_at"].endswith("Z")
