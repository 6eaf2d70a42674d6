"""The events API as seed 002 and the challenge define it, over the real app and database."""

from __future__ import annotations

import asyncio
import io
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from junction.app import create_app
from junction.events import service
from junction.platform.auth import Scope
from junction.platform.db import Database
from junction.platform.integrations import DataVersionWatcher, IntegrationRun
from junction.platform.jobs.models import Job
from junction.settings import Settings
from tests.support.app import running
from tests.support.events import api_key, bearer, sync_from, sync_response

YEAR = {"starts_at": "2021-01-01T00:00:00Z", "ends_at": "2021-12-31T23:59:59Z"}


async def events(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.get("/api/v1/events", params={**YEAR, **params})


async def test_events_in_range_have_the_seed_shape(
    client: httpx.AsyncClient, database: Database, settings: Settings, provider_emulator: str
) -> None:
    for n in (1, 2, 3):
        await sync_response(database, settings, provider_emulator, n)

    response = await events(client)

    assert response.status_code == 200
    body = response.json()
    assert body["meta"] == {
        "pagination": {"current_page": 1, "per_page": 20, "total_count": 3, "total_pages": 1}
    }
    # Earliest first; 322 is still served after it vanished; 444 has no valid slot.
    assert [event["external_id"] for event in body["data"]] == ["322", "291", "1591"]
    camela = body["data"][1]
    assert set(camela) == {
        "id", "uuid", "external_id", "title", "sell_mode", "organizer_company_id",
        "created_at", "slots",
    }  # fmt: skip
    assert camela["organizer_company_id"] is None
    (slot,) = camela["slots"]
    assert slot["starts_at"] == "2021-06-30T21:00:00.000Z"
    assert slot["ends_at"] == "2021-06-30T21:30:00.000Z"
    assert slot["sold_out"] is False
    assert set(slot) == {
        "id", "uuid", "external_id", "starts_at", "ends_at", "sell_from", "sell_to",
        "sold_out", "created_at", "zones",
    }  # fmt: skip
    assert [(z["external_id"], z["capacity"], z["price"]) for z in slot["zones"]] == [
        ("40", 200, "20.0"),
        ("38", 0, "15.0"),
        ("30", 80, "30.0"),
    ]
    assert set(slot["zones"][0]) == {
        "id", "uuid", "external_id", "name", "capacity", "price", "numbered", "created_at",
    }  # fmt: skip
    morancos_zones = body["data"][2]["slots"][0]["zones"]
    assert [(z["external_id"], z["numbered"], z["capacity"]) for z in morancos_zones] == [
        ("186", True, 0),
        ("186", False, 12),
    ]
    assert response.headers["content-type"] == "application/json"


async def test_search_lists_only_events_ever_sold_online_with_prices(
    client: httpx.AsyncClient, database: Database, settings: Settings, provider_emulator: str
) -> None:
    for n in (1, 2, 3):
        await sync_response(database, settings, provider_emulator, n)

    response = await client.get("/search", params=YEAR)

    assert response.status_code == 200
    body = response.json()
    assert body["error"] is None
    found = {(e["title"], e["min_price"], e["max_price"]) for e in body["data"]["events"]}
    assert found == {
        ("Pantomima Full", 55.0, 55.0),
        ("Camela en concierto", 15.0, 30.0),
        ("Los Morancos", 65.0, 75.0),
    }
    camela = next(e for e in body["data"]["events"] if e["title"] == "Camela en concierto")
    assert {k: camela[k] for k in ("start_date", "start_time", "end_date", "end_time")} == {
        "start_date": "2021-06-30",
        "start_time": "21:00:00",
        "end_date": "2021-06-30",
        "end_time": "21:30:00",
    }


async def test_an_offline_event_with_a_valid_slot_is_on_the_api_but_not_on_search(
    client: httpx.AsyncClient, database: Database, settings: Settings, provider_emulator: str
) -> None:
    await sync_response(database, settings, provider_emulator, 1)
    offline = b"""<eventList><output><base_event base_event_id="444" sell_mode="offline"
        organizer_company_id="1" title="Tributo"><event event_start_date="2021-09-30T20:00:00"
        event_end_date="2021-09-30T21:00:00" event_id="1642" sell_from="2021-02-10T00:00:00"
        sell_to="2021-09-30T19:50:00" sold_out="false"><zone zone_id="7" capacity="22"
        price="65.00" name="Amfiteatre" numbered="false"/></event></base_event>
        </output></eventList>"""
    async with database.transaction() as session:
        await service.persist_feed(session, io.BytesIO(offline), ZoneInfo("UTC"))

    listed = (await events(client)).json()["data"]
    searched = (await client.get("/search", params=YEAR)).json()["data"]["events"]

    assert "444" in [event["external_id"] for event in listed]
    assert "Tributo" not in [event["title"] for event in searched]


@pytest.mark.parametrize(
    ("params", "messages"),
    [
        ({}, ["Start date is missing or invalid", "End date is missing or invalid"]),
        ({"starts_at": "2021-01-01T00:00:00Z"}, ["End date is missing or invalid"]),
        ({"starts_at": "2021-13-01", "ends_at": "2021-12-01"}, ["Start date is missing or invalid"]),  # noqa: E501
        ({"starts_at": "yesterday", "ends_at": ""}, [
            "Start date is missing or invalid", "End date is missing or invalid",
        ]),
        (
            {"starts_at": "2021-12-31T00:00:00Z", "ends_at": "2021-01-01T00:00:00Z"},
            ["End date must not be before the start date"],
        ),
        ({**YEAR, "per_page": "101"}, ["per_page must be at most 100"]),
    ],
)  # fmt: skip
async def test_bad_dates_and_paging_get_422_in_the_seed_shape(
    client: httpx.AsyncClient, params: dict[str, str], messages: list[str]
) -> None:
    response = await client.get("/api/v1/events", params=params)
    assert response.status_code == 422
    assert response.json() == {"errors": messages}


@pytest.mark.parametrize("params", [{"page": "0"}, {"per_page": "0"}, {"page": "abc"}])
async def test_bad_page_numbers_get_422(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await events(client, **params)
    assert response.status_code == 422
    assert list(response.json()) == ["errors"]


@pytest.mark.parametrize(
    "params",
    [{}, {"starts_at": "2021-01-01"}, {"starts_at": "x", "ends_at": "2021-01-01"},
     {"starts_at": "2021-02-01", "ends_at": "2021-01-01"}],
)  # fmt: skip
async def test_search_errors_have_the_challenge_shape(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/search", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["data"] is None
    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["message"]


async def test_pagination_edges(
    client: httpx.AsyncClient, database: Database, settings: Settings, provider_emulator: str
) -> None:
    await sync_response(database, settings, provider_emulator, 1)

    pages = [(await events(client, per_page=1, page=n)).json() for n in (1, 2, 3, 4)]

    assert [[e["external_id"] for e in page["data"]] for page in pages] == [
        ["322"], ["291"], ["1591"], [],
    ]  # fmt: skip
    assert pages[3]["meta"]["pagination"] == {
        "current_page": 4, "per_page": 1, "total_count": 3, "total_pages": 3,
    }  # fmt: skip
    empty = (await client.get("/api/v1/events", params={
        "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z",
    })).json()  # fmt: skip
    assert empty == {
        "meta": {"pagination": {"current_page": 1, "per_page": 20, "total_count": 0,
                                "total_pages": 0}},
        "data": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "listed"),
    [
        # 322's slot is 2021-02-10 20:00 to 21:30 UTC; touching either end counts.
        ("2021-02-10T21:30:00Z", "2021-02-10T23:00:00Z", True),
        ("2021-02-10T18:00:00Z", "2021-02-10T20:00:00Z", True),
        ("2021-02-10T21:30:01Z", "2021-02-10T23:00:00Z", False),
        ("2021-02-10T18:00:00Z", "2021-02-10T19:59:59Z", False),
        ("2021-02-10T20:30:00Z", "2021-02-10T20:45:00Z", True),
        ("2021-02-10T22:30:00+01:00", "2021-02-10T23:00:00+01:00", True),
        ("2021-02-10", "2021-02-10", False),
        ("2021-02-10", "2021-02-11", True),
    ],
)
async def test_range_edges(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    provider_emulator: str,
    starts_at: str,
    ends_at: str,
    listed: bool,
) -> None:
    await sync_response(database, settings, provider_emulator, 1)
    response = await client.get(
        "/api/v1/events", params={"starts_at": starts_at, "ends_at": ends_at}
    )
    assert response.status_code == 200
    assert ("322" in [e["external_id"] for e in response.json()["data"]]) is listed


async def test_cache_etag_304_and_invalidation_by_sync(
    client: httpx.AsyncClient, database: Database, settings: Settings, provider_emulator: str
) -> None:
    await sync_response(database, settings, provider_emulator, 1)
    first = await events(client)
    second = await events(client)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.content == second.content
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=60"

    not_modified = await client.get(
        "/api/v1/events", params=YEAR, headers={"If-None-Match": f'W/{etag}, "other"'}
    )
    assert not_modified.status_code == 304
    assert not_modified.content == b""

    await sync_response(database, settings, provider_emulator, 1)  # unchanged: still cached
    assert (await events(client)).headers["x-cache"] == "hit"

    await sync_response(database, settings, provider_emulator, 2)  # changed: invalidated
    changed = await client.get("/api/v1/events", params=YEAR, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["x-cache"] == "miss"
    assert changed.headers["etag"] != etag
    capacities = [z["capacity"] for z in changed.json()["data"][1]["slots"][0]["zones"]]
    assert capacities == [240, 50, 90]


async def test_a_slow_or_failing_provider_does_not_hold_up_the_api(
    client: httpx.AsyncClient, database: Database, settings: Settings, provider_emulator: str
) -> None:
    await sync_response(database, settings, provider_emulator, 1)
    patient = settings.model_copy(update={"provider_read_timeout_seconds": 10.0})
    slow_sync = asyncio.create_task(
        sync_from(database, patient, provider_emulator, "mode=slow&delay=3")
    )
    try:
        while not await _run_started(database):
            await asyncio.sleep(0.05)
        response = await events(client)
        assert response.status_code == 200
        assert len(response.json()["data"]) == 3
        assert not slow_sync.done(), "the API answered only after the provider did"
    finally:
        run = await slow_sync
    assert run.status == "succeeded"


async def _run_started(database: Database) -> bool:
    async with database.reading() as session:
        runs = (await session.scalars(select(IntegrationRun).order_by(IntegrationRun.id))).all()
    return len(runs) == 2


async def test_sync_trigger_needs_the_sync_scope_and_enqueues_one_job(
    client: httpx.AsyncClient, database: Database
) -> None:
    assert (await client.post("/api/v1/events/sync")).status_code == 401
    reader = await api_key(database, Scope.read)
    forbidden = await client.post("/api/v1/events/sync", headers=bearer(reader))
    assert forbidden.status_code == 403
    assert forbidden.json() == {"errors": ["The API key lacks the 'sync' scope"]}

    syncer = await api_key(database, Scope.sync)
    first = await client.post("/api/v1/events/sync", headers=bearer(syncer))
    second = await client.post("/api/v1/events/sync", headers=bearer(syncer))

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["created"] is True
    assert second.json() == {**first.json(), "created": False}
    async with database.reading() as session:
        jobs = (await session.scalars(select(Job))).all()
    assert [(job.name, job.queue, job.payload) for job in jobs] == [
        ("events.sync", "sync", {"trigger": "api"})
    ]


async def test_sync_runs_are_readable_with_the_read_scope(
    client: httpx.AsyncClient, database: Database, settings: Settings, provider_emulator: str
) -> None:
    await sync_response(database, settings, provider_emulator, 2)
    await sync_from(database, settings, provider_emulator, "mode=malformed")
    assert (await client.get("/api/v1/events/sync/runs")).status_code == 401

    reader = await api_key(database, Scope.read)
    response = await client.get("/api/v1/events/sync/runs", headers=bearer(reader))

    assert response.status_code == 200
    failed, succeeded = response.json()["data"]
    assert (failed["status"], succeeded["status"]) == ("failed", "succeeded")
    assert "not well-formed" in failed["errors"][0]
    assert succeeded["skipped"] == 1
    assert "2021-09-31" in succeeded["errors"][0]
    assert succeeded["finished_at"].endswith("Z")


async def test_a_sync_by_another_process_reaches_an_idle_web_process_within_the_interval(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    interval = Settings.model_fields["events_cache_version_check_seconds"].default
    app = create_app(settings.model_copy(update={"events_cache_version_check_seconds": interval}))
    transport = httpx.ASGITransport(app=app)
    async with running(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await sync_response(database, settings, provider_emulator, 1)
        assert (await events(client)).headers["x-cache"] == "miss"
        await asyncio.sleep(interval * 1.5)  # the web process idles past its interval

        await sync_response(database, settings, provider_emulator, 2)  # as the CLI or a worker
        await asyncio.sleep(interval * 1.5)  # no request in between
        first_after_the_pause = await events(client)

    assert first_after_the_pause.headers["x-cache"] == "miss"
    zones = first_after_the_pause.json()["data"][1]["slots"][0]["zones"]
    assert [z["capacity"] for z in zones] == [240, 50, 90]


async def test_the_watcher_timer_reads_the_version_without_requests(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    watcher = DataVersionWatcher(database, service.INTEGRATION, interval=0.5)
    first = await watcher.current()
    timer = asyncio.create_task(watcher.refresh_forever())
    try:
        await sync_response(database, settings, provider_emulator, 1)
        await asyncio.sleep(0.75)
        # The timer read within an interval, so this read is under two intervals old and
        # is answered without a read of its own: only the timer can have seen the sync.
        assert await watcher.current() > first
    finally:
        timer.cancel()


async def test_equivalent_parameters_share_the_cached_answer(
    client: httpx.AsyncClient, database: Database, settings: Settings, provider_emulator: str
) -> None:
    await sync_response(database, settings, provider_emulator, 1)
    built = await events(client, page="1", per_page="20")
    same = await events(client, page="01", extra="ignored")
    shifted = await client.get(
        "/api/v1/events",
        params={"starts_at": "2021-01-01T01:00:00+01:00", "ends_at": "2021-12-31T23:59:59"},
    )
    assert built.headers["x-cache"] == "miss"
    assert (same.headers["x-cache"], shifted.headers["x-cache"]) == ("hit", "hit")
    assert same.content == shifted.content == built.content
    refused = await events(client, per_page="0")
    assert refused.status_code == 422
    huge = await events(client, page="9" * 5000)
    assert huge.status_code == 422
