"""``junction emulators``: the three emulators as a process of their own, at the demo's paths."""

from __future__ import annotations

import httpx
import pytest

from junction.emulators.airtable import DEFAULT_BASE_ID, DEFAULT_TABLE, DEFAULT_TOKEN
from junction.emulators.wellness import EmulatorConfig
from junction.settings import Settings
from tests.support.live import start_live_server

pytestmark = pytest.mark.slow


def test_the_emulators_command_serves_all_three_at_the_demo_paths(settings: Settings) -> None:
    with (
        start_live_server(settings, ("-m", "junction", "emulators"), ready_path="/up") as server,
        httpx.Client(base_url=f"{server.base_url}/emulators", timeout=10) as client,
    ):
        airtable = client.get(
            f"/airtable/v0/{DEFAULT_BASE_ID}/{DEFAULT_TABLE}",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        )
        feed = client.get("/provider/api/events")
        clients = client.get(
            "/wellness/clients",
            params={"limit": 2},
            headers={"Authorization": f"Bearer {EmulatorConfig.api_key}"},
        )

    assert airtable.status_code == 200, airtable.text
    assert airtable.json() == {"records": []}
    assert feed.status_code == 200
    assert feed.content.startswith(b"<?xml")
    assert b"<base_event" in feed.content
    assert clients.status_code == 200, clients.text
    assert len(clients.json()["data"]) == 2
