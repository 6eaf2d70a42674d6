"""``junction serve --demo`` on a fresh database shows every flow within a minute of start:
the sample chat data, the provider feed, a wellness sync and a demo user in Airtable, all
with the default timings, as a real process polled over HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from junction.emulators.airtable import DEFAULT_BASE_ID, DEFAULT_TABLE
from junction.settings import Settings
from tests.support.live import LiveServer, environment_for, start_live_server

pytestmark = pytest.mark.slow

WITHIN_SECONDS = 60
SAMPLE_APPLICATION = re.compile(r"Customer Support Platform: token (\w+), 12 chats")


def junction(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "junction", *args],
        env=environment_for(settings, COLUMNS="300"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def chat_seeded(client: httpx.Client, token: str) -> bool:
    application = client.get(f"/applications/{token}")
    chats = client.get(f"/applications/{token}/chats")
    return application.json()["chats_count"] == 12 and len(chats.json()) == 12


def events_listed(client: httpx.Client) -> bool:
    window = {"starts_at": "2021-01-01", "ends_at": "2022-01-01"}
    return bool(client.get("/api/v1/events", params=window).json()["data"])


def wellness_synced(client: httpx.Client) -> bool:
    status = client.get("/api/v1/sync/status").json()
    return all(
        (status[kind]["last_run"] or {}).get("status") == "succeeded" and status[kind]["total"] > 0
        for kind in ("clients", "appointments")
    )


def user_in_airtable(client: httpx.Client) -> bool:
    users = client.get("/api/v1/users").json()["data"]
    synced = [user for user in users if user["sync"]["status"] == "synced"]
    if not synced:
        return False
    records = client.get(
        f"/emulators/airtable/_emulator/bases/{DEFAULT_BASE_ID}/tables/{DEFAULT_TABLE}/records"
    ).json()["records"]
    written = {record["id"]: record["fields"]["Junction ID"] for record in records}
    return any(written.get(user["sync"]["airtable_record_id"]) == user["id"] for user in synced)


def wait_for_flows(
    server: LiveServer, client: httpx.Client, flows: dict[str, Callable[[], bool]], deadline: float
) -> None:
    waiting = dict(flows)
    while waiting and time.monotonic() < deadline:
        waiting = {name: shown for name, shown in waiting.items() if not shown()}
        time.sleep(0.25)
    assert not waiting, f"not shown within {WITHIN_SECONDS} s: {sorted(waiting)}\n{server.logs()}"


def test_demo_shows_every_flow_within_a_minute(settings: Settings, tmp_path: Path) -> None:
    fresh = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", "redis_url": None}
    )
    demo = {
        "JUNCTION_MIGRATE_ON_START": "true",
        "JUNCTION_RUN_EMBEDDED_WORKER": "true",
        "JUNCTION_STORAGE_PATH": str(tmp_path / "files"),
    }
    started = time.monotonic()
    with start_live_server(fresh, ("-m", "junction", "serve", "--demo"), **demo) as server:
        token = SAMPLE_APPLICATION.search(junction(fresh, "seed-summary"))
        assert token is not None
        key = junction(fresh, "keys", "create", "--scope", "read", "--name", "demo test")
        headers = {"Authorization": f"Bearer {key.strip().splitlines()[-1]}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as client:
            flows = {
                "chat": lambda: chat_seeded(client, token[1]),
                "events": lambda: events_listed(client),
                "wellness": lambda: wellness_synced(client),
                "airtable": lambda: user_in_airtable(client),
            }
            wait_for_flows(server, client, flows, started + WITHIN_SECONDS)

    # A restart finds its first start done: no second copy of the sample data or the user.
    with start_live_server(fresh, ("-m", "junction", "serve", "--demo"), **demo) as server:
        assert "5 applications, 46 chats" in junction(fresh, "seed-summary")
        users = httpx.get(f"{server.base_url}/api/v1/users", headers=headers, timeout=10)
        assert users.json()["meta"]["pagination"]["total_count"] == 1
