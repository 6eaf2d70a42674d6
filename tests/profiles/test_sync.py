"""The Airtable sync end to end: Junction and the Airtable emulator as real HTTP servers.

The app runs its embedded worker, so jobs, the throttle and pyairtable all run as in
production; the emulator injects the faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from junction.app import create_app
from junction.emulators.airtable import (
    DEFAULT_BASE_ID,
    DEFAULT_TOKEN,
    AirtableState,
    Faults,
    create_airtable_emulator,
    emulator_state,
)
from junction.platform.auth import Scope
from junction.platform.integrations import DeadLetter, IntegrationRun
from junction.platform.jobs.models import Job
from junction.platform.wire import wire_time
from junction.profiles.models import User
from junction.settings import Settings
from tests.platform.realtime.test_stock_client import node_client
from tests.support.files import png_bytes
from tests.support.live import free_port, serving_in_thread
from tests.support.profiles import ADA
from tests.support.realtime import RunningServer, serving
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


@dataclass
class Setup:
    junction: RunningServer
    airtable: AirtableState
    client: httpx.AsyncClient

    def records(self) -> list[dict[str, Any]]:
        return self.airtable.records(DEFAULT_BASE_ID, "Users")

    async def users(self) -> list[User]:
        async with self.junction.app.state.database.reading() as session:
            return list((await session.scalars(select(User).order_by(User.id))).all())


@pytest.fixture
async def setup(settings: Settings, tmp_path: Path) -> AsyncIterator[Setup]:
    emulator = create_airtable_emulator(penalty_seconds=1.0, faults=Faults(seed=20261123))
    with serving_in_thread(emulator, "Airtable emulator") as airtable_url:
        port = free_port()
        app = create_app(
            settings.model_copy(
                update={
                    "run_embedded_worker": True,
                    "job_poll_seconds": 0.05,
                    "storage_path": tmp_path / "files",
                    "public_base_url": f"http://127.0.0.1:{port}",
                    "airtable_api_key": SecretStr(DEFAULT_TOKEN),
                    "airtable_base_id": DEFAULT_BASE_ID,
                    "airtable_endpoint_url": airtable_url,
                    "airtable_timeout_seconds": 1.0,
                    "airtable_rate_limit_wait_seconds": 1.0,
                }
            )
        )
        async with serving(app, port) as junction:
            key = await junction.api_key(Scope.read, Scope.write, Scope.sync)
            async with httpx.AsyncClient(
                base_url=junction.base_url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ) as client:
                yield Setup(junction, emulator_state(emulator), client)


async def all_synced(setup: Setup, count: int) -> None:
    async def synced() -> bool:
        users = await setup.users()
        return len(users) == count and all(user.sync_status == "synced" for user in users)

    await eventually(synced, timeout=90)


async def test_100_users_give_exactly_100_records_through_500s_timeouts_and_429s(
    setup: Setup,
) -> None:
    setup.airtable.faults.update(
        {"error_rate": 0.15, "timeout_rate": 0.1, "rate_limit_rate": 0.1, "stall_seconds": 1.5}
    )
    responses = await asyncio.gather(
        *(
            setup.client.post("/api/v1/users", json={**ADA, "email": f"user{i}@example.com"})
            for i in range(100)
        )
    )
    assert [response.status_code for response in responses] == [201] * 100

    await all_synced(setup, 100)
    setup.airtable.faults.clear()
    users = await setup.users()
    records = setup.records()
    assert len(records) == 100
    by_junction_id = {record["fields"]["Junction ID"]: record for record in records}
    assert set(by_junction_id) == {user.uuid for user in users}
    for user in users:
        record = by_junction_id[user.uuid]
        assert record["id"] == user.airtable_record_id
        assert record["fields"]["Email"] == user.email
        assert record["fields"]["Date of Birth"] == "1985-12-10"
        assert user.synced_at is not None
    stats = setup.airtable.stats()
    assert stats["requests"].get("500", 0) > 0, stats
    assert stats["rate_limited"] > 0, stats
    assert stats["stalled"] > 0, stats


async def test_a_failing_airtable_shows_on_the_user_and_in_the_job_records(setup: Setup) -> None:
    setup.airtable.faults.update({"error_rate": 1.0})
    user = (await setup.client.post("/api/v1/users", json=ADA)).json()

    async def retrying() -> bool:
        shown = (await setup.client.get(f"/api/v1/users/{user['id']}")).json()
        return bool(shown["sync"]["status"] == "retrying")

    await eventually(retrying, timeout=20)
    shown = (await setup.client.get(f"/api/v1/users/{user['id']}")).json()
    assert shown["sync"]["attempts"] >= 1
    assert "500" in shown["sync"]["last_error"]

    async def failed_job() -> Job | None:
        # The worker records the job's error just after the user's, in its own commit.
        async with setup.junction.app.state.database.reading() as session:
            job = await session.scalar(select(Job).where(Job.name == "profiles.sync_airtable"))
        return job if job is not None and job.errors else None

    job = await eventually(failed_job, timeout=20)
    assert "500" in str(job.errors[0])

    setup.airtable.faults.clear()
    await all_synced(setup, 1)
    assert len(setup.records()) == 1


async def test_each_drain_is_a_run_and_a_refused_user_a_dead_letter(setup: Setup) -> None:
    setup.airtable.tokens = frozenset()  # every write refused for good (401)
    refused = (await setup.client.post("/api/v1/users", json=ADA)).json()

    async def gave_up() -> bool:
        shown = (await setup.client.get(f"/api/v1/users/{refused['id']}")).json()
        return bool(shown["sync"]["status"] == "failed")

    await eventually(gave_up, timeout=30)
    letters = await _airtable_dead_letters(setup)
    assert [(d.external_id, d.resolved_at) for d in letters] == [(refused["id"], None)]
    assert letters[0].payload["email"].lower() == ADA["email"].lower()
    assert "401" in letters[0].error

    setup.airtable.tokens = frozenset({DEFAULT_TOKEN})
    renamed = await setup.client.patch(f"/api/v1/users/{refused['id']}", json={"first_name": "A"})
    assert renamed.status_code == 200
    await all_synced(setup, 1)

    [letter] = await _airtable_dead_letters(setup)
    assert (letter.resolution, letter.resolved_at is not None) == ("superseded", True)

    async def finished_runs() -> list[IntegrationRun] | None:
        # The drain closes its run after the users' commits that show them synced.
        async with setup.junction.app.state.database.reading() as session:
            query = select(IntegrationRun).where(IntegrationRun.integration == "airtable")
            runs = list(await session.scalars(query.order_by(IntegrationRun.id)))
        return runs if all(run.finished_at is not None for run in runs) else None

    runs = await eventually(finished_runs, timeout=20)
    assert runs[0].status == "failed"
    assert (runs[0].set_aside, runs[0].kind) == (1, "users")
    assert (runs[-1].status, runs[-1].created, runs[-1].set_aside) == ("succeeded", 1, 0)


async def _airtable_dead_letters(setup: Setup) -> list[DeadLetter]:
    async with setup.junction.app.state.database.reading() as session:
        query = select(DeadLetter).where(DeadLetter.integration == "airtable")
        return list(await session.scalars(query.order_by(DeadLetter.id)))


async def test_updates_and_deletes_reach_airtable(setup: Setup) -> None:
    user = (await setup.client.post("/api/v1/users", json=ADA)).json()
    await all_synced(setup, 1)
    record_id = setup.records()[0]["id"]

    await setup.client.patch(f"/api/v1/users/{user['id']}", json={"last_name": "King"})

    async def renamed() -> bool:
        records = setup.records()
        return len(records) == 1 and records[0]["fields"]["Last Name"] == "King"

    await eventually(renamed, timeout=60)
    assert setup.records()[0]["id"] == record_id

    assert (await setup.client.delete(f"/api/v1/users/{user['id']}")).status_code == 204

    async def gone() -> bool:
        return not setup.records() and not await setup.users()

    await eventually(gone, timeout=60)


async def test_the_file_url_sent_to_airtable_downloads_the_file(setup: Setup) -> None:
    image = png_bytes(3000)
    response = await setup.client.post(
        "/api/v1/users", data=ADA, files={"file": ("portrait.png", image, "image/png")}
    )
    assert response.status_code == 201, response.text
    await all_synced(setup, 1)

    attachment = setup.records()[0]["fields"]["File Uploaded"][0]
    assert attachment["filename"] == "portrait.png"
    async with httpx.AsyncClient() as anonymous:
        download = await anonymous.get(attachment["url"])
    assert download.status_code == 200
    assert download.content == image


async def test_the_stock_client_receives_seed_000_payloads(setup: Setup) -> None:
    cable_url = setup.junction.cable_url
    async with node_client(cable_url, {"channel": "UserUpdatesChannel"}) as client:
        await client.wait_for("connected")
        user = (await setup.client.post("/api/v1/users", json=ADA)).json()
        received = await client.wait_for("received", count=2)

    rows = await setup.users()
    assert rows[0].synced_at is not None
    assert [event["data"] for event in received] == [
        {
            "type": "new_user",
            "user": {
                "id": user["id"],
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "Ada@example.com",
                "date_of_birth": "1985-12-10",
                "created_at": user["created_at"],
                "synced_at": None,
            },
        },
        {
            "type": "sync_status_update",
            "user": {"id": user["id"], "synced_at": _wire(rows[0].synced_at)},
        },
    ]


def _wire(moment: datetime | None) -> str:
    assert moment is not None
    return wire_time(moment)
