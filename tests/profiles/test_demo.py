"""``junction serve --demo``: users sync to the Airtable emulator mounted in the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from junction.emulators.airtable import DEFAULT_BASE_ID
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.settings import Settings
from tests.support.live import start_live_server
from tests.support.profiles import ADA

pytestmark = pytest.mark.slow


async def test_demo_mode_syncs_users_to_the_mounted_emulator(
    settings: Settings, tmp_path: Path
) -> None:
    database = Database(settings)
    try:
        async with database.transaction() as session:
            _, key = await create_api_key(session, "demo", [Scope.read, Scope.write])
    finally:
        await database.dispose()
    with start_live_server(
        settings,
        ("-m", "junction", "serve", "--demo"),
        JUNCTION_RUN_EMBEDDED_WORKER="true",
        JUNCTION_JOB_POLL_SECONDS="0.1",
        JUNCTION_STORAGE_PATH=str(tmp_path / "files"),
    ) as server:
        headers = {"Authorization": f"Bearer {key}"}
        records_url = (
            f"{server.base_url}/emulators/airtable/_emulator/bases/{DEFAULT_BASE_ID}"
            "/tables/Users/records"
        )
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
            created = await client.post("/api/v1/users", json=ADA)
            assert created.status_code == 201, created.text
            user_url = f"/api/v1/users/{created.json()['id']}"
            for _ in range(200):
                shown = (await client.get(user_url)).json()
                if shown["sync"]["status"] == "synced":
                    break
                await asyncio.sleep(0.1)
            assert shown["sync"]["status"] == "synced", server.logs()
            records = (await client.get(records_url)).json()["records"]

    assert [record["id"] for record in records] == [shown["sync"]["airtable_record_id"]]
    assert records[0]["fields"]["Email"] == "Ada@example.com"
