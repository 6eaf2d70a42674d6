"""Sync runs against the provider emulator over real HTTP, on the real database."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from junction.emulators.provider import fixture, synthetic_feed
from junction.events import service
from junction.events.feed import FeedError
from junction.events.models import Event, Slot, Zone
from junction.platform.db import Database
from junction.platform.integrations import DeadLetter, IntegrationRun
from junction.settings import Settings
from tests.support.events import sync_from, sync_response
from tests.support.live import free_port


async def row_counts(database: Database) -> tuple[int, int, int]:
    async with database.reading() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Event, Slot, Zone)
        ]
    return (int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0))


async def slot_versions(database: Database, event: str, slot: str) -> list[Slot]:
    async with database.reading() as session:
        rows = await session.scalars(
            select(Slot)
            .join(Event, Event.id == Slot.event_id)
            .where(Event.external_id == event, Slot.external_id == slot)
            .order_by(Slot.id)
        )
        return list(rows)


async def zones_of(database: Database, slot_id: int) -> list[tuple[str, int, Decimal, bool]]:
    async with database.reading() as session:
        rows = await session.execute(
            select(Zone.external_id, Zone.capacity, Zone.price, Zone.numbered)
            .where(Zone.slot_id == slot_id)
            .order_by(Zone.position)
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_three_real_responses_give_current_state_and_history(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    first = await sync_response(database, settings, provider_emulator, 1)
    assert (first.status, first.created, first.updated, first.skipped) == ("succeeded", 3, 0, 0)
    assert await row_counts(database) == (3, 3, 6)

    second = await sync_response(database, settings, provider_emulator, 2)
    assert (second.status, second.created, second.updated, second.unchanged) == (
        "succeeded", 0, 2, 0,
    )  # fmt: skip
    assert second.skipped == 1
    assert "2021-09-31" in second.errors[0]

    third = await sync_response(database, settings, provider_emulator, 3)
    assert (third.created, third.updated, third.unchanged, third.skipped) == (0, 2, 0, 1)

    # 322 vanished after response 1: its only slot is still the current one.
    (pantomima,) = await slot_versions(database, "322", "1642")
    assert pantomima.current

    # 1642 under 1591 is a different slot from 1642 under 322; three versions, one current.
    morancos = await slot_versions(database, "1591", "1642")
    assert [slot.current for slot in morancos] == [False, False, True]
    assert [slot.ends_at.minute for slot in morancos] == [0, 20, 0]
    assert len({slot.uuid for slot in morancos}) == 1
    # zone_id 186 twice in one slot: both kept, in every version.
    assert await zones_of(database, morancos[0].id) == [
        ("186", 2, Decimal("75.00"), True),
        ("186", 16, Decimal("65.00"), False),
    ]
    assert await zones_of(database, morancos[-1].id) == [
        ("186", 0, Decimal("75.00"), True),
        ("186", 12, Decimal("65.00"), False),
    ]

    camela = await slot_versions(database, "291", "291")
    assert [[z[1] for z in await zones_of(database, s.id)] for s in camela] == [
        [243, 100, 90],
        [240, 50, 90],
        [200, 0, 80],
    ]
    async with database.reading() as session:
        tribute = await session.scalar(select(Event).where(Event.external_id == "444"))
    assert tribute is not None
    assert (tribute.sell_mode, tribute.ever_online) == ("offline", False)


async def test_an_unchanged_feed_writes_nothing(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    await sync_response(database, settings, provider_emulator, 3)
    async with database.reading() as session:
        before = await session.scalar(select(func.max(Slot.updated_at)))
    counts = await row_counts(database)

    again = await sync_response(database, settings, provider_emulator, 3)

    assert (again.status, again.rows_written, again.created, again.updated) == (
        "succeeded", 0, 0, 0,
    )  # fmt: skip
    assert again.unchanged == 2
    assert await row_counts(database) == counts
    async with database.reading() as session:
        assert await session.scalar(select(func.max(Slot.updated_at))) == before


async def test_plan_list_format_then_event_list_keeps_the_vanished_slot(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    first = await sync_response(database, settings, provider_emulator, 1)
    assert first.created == 3
    run = await sync_from(database, settings, provider_emulator, "mode=fixed&response=plan")
    assert (run.created, run.unchanged) == (1, 3)  # 1643 under 322 is new
    assert [s.current for s in await slot_versions(database, "322", "1643")] == [True]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("mode=error", "HTTP 500"),
        ("mode=malformed", "not well-formed"),
        ("mode=empty", "empty body"),
        ("mode=slow&delay=5", "ReadTimeout"),
    ],
)
async def test_a_failing_provider_changes_nothing_and_the_run_says_why(
    database: Database, settings: Settings, provider_emulator: str, query: str, message: str
) -> None:
    await sync_response(database, settings, provider_emulator, 1)
    counts = await row_counts(database)
    fast = settings.model_copy(update={"provider_read_timeout_seconds": 0.3})

    run = await sync_from(database, fast, provider_emulator, query)

    assert run.status == "failed"
    assert run.finished_at is not None
    assert message in run.errors[0]
    assert await row_counts(database) == counts


async def test_a_feed_over_the_size_limit_is_refused(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    small = settings.model_copy(update={"provider_max_feed_bytes": 50_000})
    run = await sync_from(database, small, provider_emulator, "mode=huge&zones=5000")
    assert run.status == "failed"
    assert "larger than 50000 bytes" in run.errors[0]
    assert await row_counts(database) == (0, 0, 0)


async def test_a_provider_that_is_down_fails_the_run(
    database: Database, settings: Settings
) -> None:
    down = settings.model_copy(
        update={"provider_url": f"http://127.0.0.1:{free_port()}/api/events"}
    )
    run = await service.run_sync(database, down, "test")
    assert run.status == "failed"
    assert "ConnectError" in run.errors[0]


async def test_a_feed_malformed_after_good_records_rolls_back_all_of_it(
    database: Database,
) -> None:
    document = b"".join(synthetic_feed(3000))
    cut = document[: len(document) - 200]
    with pytest.raises(FeedError):
        async with database.transaction() as session:
            await service.persist_feed(session, io.BytesIO(cut), ZoneInfo("UTC"))
    assert await row_counts(database) == (0, 0, 0)


async def test_an_event_once_sold_online_stays_searchable_when_it_goes_offline(
    database: Database,
) -> None:
    def feed(mode: str) -> bytes:
        return f"""<eventList><output>
          <base_event base_event_id="9" sell_mode="{mode}" title="Switch">
            <event event_start_date="2030-01-01T10:00:00" event_end_date="2030-01-01T11:00:00"
                   event_id="1" sell_from="2029-01-01T00:00:00"
                   sell_to="2030-01-01T09:00:00" sold_out="false"/>
          </base_event></output></eventList>""".encode()

    for mode in ("online", "offline"):
        async with database.transaction() as session:
            await service.persist_feed(session, io.BytesIO(feed(mode)), ZoneInfo("UTC"))
    async with database.reading() as session:
        event = await session.scalar(select(Event).where(Event.external_id == "9"))
        found = await service.search(
            session, datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)
        )
    assert event is not None
    assert (event.sell_mode, event.ever_online) == ("offline", True)
    assert [e.title for e in found.events] == ["Switch"]


async def test_runs_are_recorded_with_their_trigger(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    await sync_response(database, settings, provider_emulator, 2)
    async with database.reading() as session:
        (run,) = (await session.scalars(select(IntegrationRun))).all()
    assert (run.trigger, run.status, run.set_aside) == ("test", "succeeded", 1)
    assert run.finished_at is not None
    assert run.started_at <= run.finished_at
    assert run.bytes_read == len(fixture("response_2.xml"))


async def test_a_skipped_record_is_set_aside_with_what_it_was_and_why(
    database: Database, settings: Settings, provider_emulator: str
) -> None:
    run = await sync_response(database, settings, provider_emulator, 2)
    async with database.reading() as session:
        (letter,) = (await session.scalars(select(DeadLetter))).all()
    assert (letter.integration, letter.kind, letter.run_id) == ("events", "feed", run.id)
    assert letter.external_id == "1642"
    assert letter.payload == {"record": "event", "parent": "base_event 444", "line": 18}
    assert letter.error == run.errors[0]
    assert "'2021-09-31T20:00:00' is not a valid date and time" in letter.error
    assert letter.resolved_at is None
