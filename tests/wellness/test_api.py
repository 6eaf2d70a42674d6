"""The sync routes, run history, dead letters and read endpoints, over the app."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import junction.wellness.jobs  # noqa: F401  (registers the wellness schedules)
from junction.emulators.wellness import Mode, WellnessEmulator
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.platform.integrations.metrics import INTEGRATION_HEALTH
from junction.platform.jobs import registry
from junction.settings import Settings
from junction.wellness.metrics import WELLNESS_SYNC_STATS
from junction.wellness.models import SyncKind
from junction.wellness.service import SCHEDULE_NAMES
from tests.support.queue import finished_jobs
from tests.support.wellness import runs, sync
from tests.support.workers import worker_running


async def api_key(database: Database, *scopes: Scope) -> dict[str, str]:
    async with database.transaction() as session:
        _, plain = await create_api_key(session, "wellness tests", scopes)
    return {"Authorization": f"Bearer {plain}"}


@pytest.fixture
async def sync_key(database: Database) -> dict[str, str]:
    return await api_key(database, Scope.sync, Scope.read)


async def test_status_is_public_and_counts_per_status(
    client: httpx.AsyncClient, database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.appointments)

    response = await client.get("/api/v1/sync/status")

    assert response.status_code == 200
    body = response.json()
    pending = len({emulator.appointment(i)["client_id"] for i in range(1, 101)})
    assert body["clients"]["counts"] == {"pending": pending, "syncing": 0, "synced": 0, "error": 0}
    assert body["appointments"]["counts"]["synced"] == 100
    assert body["appointments"]["state"] == "idle"
    assert body["appointments"]["last_run"]["counts"]["created"] == 100
    assert body["appointments"]["last_success_at"] is not None
    assert body["clients"]["last_run"] is None
    assert body["clients"]["schedule"]["cron"] == "0 */6 * * *"
    assert body["appointments"]["schedule"]["cron"] == "0 */2 * * *"
    assert body["queue"] == {"queued": 0, "running": 0}


def test_the_schedules_fire_on_first_start_then_keep_their_crons() -> None:
    expected = {SyncKind.clients: "0 */6 * * *", SyncKind.appointments: "0 */2 * * *"}
    for kind, cron in expected.items():
        schedule = registry.schedules[SCHEDULE_NAMES[kind]]
        assert schedule.spec == f"cron:{cron}"
        assert schedule.run_on_first_start


@pytest.mark.parametrize("path", ["clients", "appointments", "all", "force"])
async def test_triggers_need_a_key_with_the_sync_scope(
    client: httpx.AsyncClient, database: Database, path: str
) -> None:
    anonymous = await client.post(f"/api/v1/sync/{path}")
    reader = await client.post(f"/api/v1/sync/{path}", headers=await api_key(database, Scope.read))

    assert anonymous.status_code == 401
    assert "errors" in anonymous.json()
    assert reader.status_code == 403
    assert "errors" in reader.json()


async def test_two_triggers_at_once_run_one_sync(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    emulator: WellnessEmulator,
    sync_key: dict[str, str],
) -> None:
    first, second = await asyncio.gather(
        client.post("/api/v1/sync/clients", headers=sync_key),
        client.post("/api/v1/sync/clients", headers=sync_key),
    )

    assert (first.status_code, second.status_code) == (202, 202)
    [one], [other] = first.json()["jobs"], second.json()["jobs"]
    assert one["job_id"] == other["job_id"]
    assert sorted([one["created"], other["created"]]) == [False, True]
    async with worker_running(database, settings):
        [job] = await finished_jobs(database, {one["job_id"]})
    assert job.state == "succeeded"
    [run] = await runs(database)
    assert (run.kind, run.trigger, run.status, run.job_id) == (
        "clients",
        "manual",
        "succeeded",
        job.id,
    )
    status = await client.get(f"/api/v1/jobs/{job.id}", params={"token": one["job_token"]})
    assert status.json()["result"]["counts"]["created"] == 40


async def test_force_runs_a_full_sync_after_the_queued_one(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    emulator: WellnessEmulator,
    sync_key: dict[str, str],
) -> None:
    queued = await client.post("/api/v1/sync/all", headers=sync_key)
    forced = await client.post("/api/v1/sync/force", headers=sync_key)

    assert (queued.status_code, forced.status_code) == (202, 202)
    queued_ids = {job["job_id"] for job in queued.json()["jobs"]}
    forced_ids = {job["job_id"] for job in forced.json()["jobs"]}
    assert len(queued_ids) == 2
    assert len(forced_ids) == 2
    assert not queued_ids & forced_ids
    assert all(job["full"] for job in forced.json()["jobs"])
    async with worker_running(database, settings):
        jobs = await finished_jobs(database, queued_ids | forced_ids)
    assert {job.state for job in jobs} == {"succeeded"}
    history = await runs(database)
    assert sorted((run.kind, run.trigger, run.mode) for run in history) == [
        ("appointments", "force", "full"),
        ("appointments", "manual", "full"),
        ("clients", "force", "full"),
        ("clients", "manual", "full"),
    ]
    assert all(run.status == "succeeded" for run in history)


async def test_run_history_and_dead_letters_are_listed(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    emulator: WellnessEmulator,
    sync_key: dict[str, str],
) -> None:
    await sync(database, settings, SyncKind.clients)
    emulator.set_mode(Mode("malformed", every=10))
    await sync(database, settings, SyncKind.clients, full=True)
    emulator.set_mode(Mode("error"))
    failed = await sync(database, settings, SyncKind.clients)

    history = await client.get("/api/v1/sync/runs", headers=sync_key)
    letters = await client.get(
        "/api/v1/sync/dead_letters", params={"kind": "clients"}, headers=sync_key
    )
    one = await client.get(f"/api/v1/sync/runs/{failed.run_id}", headers=sync_key)
    missing = await client.get("/api/v1/sync/runs/999999", headers=sync_key)

    assert history.status_code == 200
    assert [r["status"] for r in history.json()["data"]] == ["failed", "succeeded", "succeeded"]
    assert history.json()["data"][1]["counts"]["failed"] == 4
    assert one.json()["error"] == failed.error
    assert one.json()["duration_seconds"] is not None
    assert letters.json()["meta"]["total"] == 4
    assert all(letter["error"] and letter["payload"] for letter in letters.json()["data"])
    assert missing.status_code == 404
    assert missing.json() == {"errors": ["sync run 999999 does not exist"]}


async def test_read_endpoints_paginate_and_filter(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    emulator: WellnessEmulator,
    sync_key: dict[str, str],
) -> None:
    await sync(database, settings, SyncKind.appointments)
    await sync(database, settings, SyncKind.clients)
    emulator.apply_changes("clients", update=[], delete=["c0000001"], create=0)
    await sync(database, settings, SyncKind.clients)

    page = await client.get("/api/v1/clients", params={"per_page": 15, "page": 2}, headers=sync_key)
    deleted = await client.get(
        "/api/v1/clients", params={"include_deleted": "true", "per_page": 200}, headers=sync_key
    )
    window = await client.get(
        "/api/v1/appointments",
        params={"starts_after": "2026-02-01T00:00:00Z", "starts_before": "2026-03-01T00:00:00Z"},
        headers=sync_key,
    )
    synced = await client.get(
        "/api/v1/appointments", params={"sync_status": "synced", "per_page": 1}, headers=sync_key
    )

    assert page.json()["meta"] == {"page": 2, "per_page": 15, "total": 39, "total_pages": 3}
    assert len(page.json()["data"]) == 15
    assert deleted.json()["meta"]["total"] == 40
    starts = [a["starts_at"] for a in window.json()["data"]]
    assert starts
    assert all("2026-02-01" <= s < "2026-03-01" for s in starts)
    assert starts == sorted(starts)
    assert all(s.endswith("Z") for s in starts)
    assert synced.json()["meta"]["total"] == 100


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/clients", {"per_page": "0"}),
        ("/api/v1/clients", {"page": "-1"}),
        ("/api/v1/clients", {"sync_status": "bogus"}),
        ("/api/v1/clients", {"updated_after": "yesterday"}),
        ("/api/v1/clients", {"updated_after": "2026-01-01T00:00:00"}),
        ("/api/v1/appointments", {"starts_after": "2026-01-01T00:00:00"}),
        ("/api/v1/appointments", {"client_external_id": "x" * 300}),
        ("/api/v1/sync/runs", {"kind": "everything"}),
        ("/api/v1/sync/runs/abc", {}),
        ("/api/v1/sync/dead_letters", {"run_id": "0"}),
    ],
)
async def test_bad_input_gets_a_422_in_the_error_shape(
    client: httpx.AsyncClient, sync_key: dict[str, str], path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params, headers=sync_key)

    assert response.status_code == 422
    assert response.json()["errors"]


async def test_metrics_show_the_seed_health_numbers(
    client: httpx.AsyncClient, database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.clients)
    emulator.set_mode(Mode("error"))
    await sync(database, settings, SyncKind.clients)
    await WELLNESS_SYNC_STATS.refresh(database)
    await INTEGRATION_HEALTH.refresh(database)

    text = (await client.get("/metrics")).text

    clients = 'integration="wellness",kind="clients"'
    assert f"junction_integration_success_ratio{{{clients}}} 0.5" in text
    assert f"junction_integration_errors{{{clients}}} 1.0" in text
    assert f'junction_integration_runs{{{clients},status="succeeded"}} 1.0' in text
    assert f"junction_integration_seconds_since_success{{{clients}}}" in text
    appointments = 'integration="wellness",kind="appointments"'
    assert f"junction_integration_seconds_since_success{{{appointments}}}" not in text
    assert 'junction_wellness_records{kind="clients",sync_status="synced"} 40.0' in text
