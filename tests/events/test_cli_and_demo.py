"""``junction sync events`` and ``junction serve --demo`` as real processes."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from junction.events.jobs import FIRST_RUN_SCHEDULE, INTERVAL_SCHEDULE
from junction.platform.jobs import registry
from junction.settings import Settings
from tests.support.live import environment_for, start_live_server


def sync_command(settings: Settings, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "junction", "sync", "events"],
        env=environment_for(settings, JUNCTION_PROVIDER_URL=url, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_sync_events_command_runs_now_and_reports(
    settings: Settings, provider_emulator: str
) -> None:
    done = sync_command(settings, f"{provider_emulator}/api/events?mode=fixed&response=2")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout
    assert "2021-09-31" in done.stdout


def test_schedules_are_registered_as_the_seed_says() -> None:
    assert registry.schedules[INTERVAL_SCHEDULE].spec == "every:300"
    assert registry.schedules[FIRST_RUN_SCHEDULE].spec == "once:5"
    assert registry.schedules[INTERVAL_SCHEDULE].job_name == "events.sync"


@pytest.mark.slow
def test_demo_mode_serves_the_emulator_and_syncs_from_it_soon_after_start(
    settings: Settings,
) -> None:
    with start_live_server(
        settings,
        ("-m", "junction", "serve", "--demo"),
        JUNCTION_EVENTS_SYNC_FIRST_RUN_SECONDS="0.2",
        JUNCTION_RUN_EMBEDDED_WORKER="true",
    ) as server:
        emulator = f"{server.base_url}/emulators/provider/api/events"
        feed = httpx.get(emulator, params={"mode": "fixed", "response": "3"}, timeout=5)
        assert feed.status_code == 200
        assert feed.content.startswith(b"<?xml")
        assert "/emulators" not in httpx.get(f"{server.base_url}/openapi.json").text

        deadline = time.monotonic() + 30
        listed: list[str] = []
        while time.monotonic() < deadline and not listed:
            body = httpx.get(
                f"{server.base_url}/api/v1/events",
                params={"starts_at": "2021-01-01", "ends_at": "2022-01-01"},
                timeout=5,
            ).json()
            listed = [event["external_id"] for event in body["data"]]
            time.sleep(0.2)
        assert sorted(listed) == ["1591", "291", "322"], server.logs()[-3000:]
