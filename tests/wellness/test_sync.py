"""The sync engine against the wellness emulator over real HTTP."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr
from sqlalchemy import select

from junction.emulators.wellness import Change, EmulatorConfig, Mode, WellnessEmulator
from junction.platform.db import Database
from junction.platform.integrations import DeadLetter
from junction.settings import Settings
from junction.wellness.models import Appointment, Client, SyncKind, SyncStatus
from tests.support.wellness import (
    API_KEY,
    appointments_by_id,
    clients_by_id,
    count,
    lease_holder_of,
    runs,
    state_of,
    sync,
)


async def test_first_full_sync_lands_every_record(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    report = await sync(database, settings, SyncKind.clients)

    assert report.status == "succeeded", report.error
    assert report.mode == "full"
    assert (report.counts.fetched, report.counts.created, report.counts.set_aside) == (40, 40, 0)
    clients = await clients_by_id(database)
    assert len(clients) == 40
    upstream = emulator.client(7)
    local = clients[upstream["id"]]
    assert (local.first_name, local.email, local.phone) == (
        upstream["first_name"],
        upstream["email"],
        upstream["phone"],
    )
    assert local.sync_status == SyncStatus.synced
    assert local.last_synced_at is not None
    state = await state_of(database, SyncKind.clients)
    assert state is not None
    assert state.cursor is not None
    assert await lease_holder_of(database, SyncKind.clients) is None
    [run] = await runs(database)
    assert (run.status, run.fetched, run.created, run.cursor_to) == (
        "succeeded",
        40,
        40,
        state.cursor,
    )


async def test_a_second_full_sync_changes_nothing(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.clients)
    before = {c.external_id: c.updated_at for c in (await clients_by_id(database)).values()}

    again = await sync(database, settings, SyncKind.clients, full=True)

    assert (again.counts.unchanged, again.counts.created, again.counts.updated) == (40, 0, 0)
    after = {c.external_id: c.updated_at for c in (await clients_by_id(database)).values()}
    assert after == before


async def test_appointments_create_their_unknown_clients(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    report = await sync(database, settings, SyncKind.appointments)

    assert report.status == "succeeded", report.error
    assert report.counts.created == 100
    appointments = await appointments_by_id(database)
    clients = await clients_by_id(database)
    expected_clients = {emulator.appointment(i)["client_id"] for i in range(1, 101)}
    assert set(clients) == expected_clients
    assert all(c.sync_status == SyncStatus.pending for c in clients.values())
    sample = appointments["a0000003"]
    assert clients[sample.client_external_id].id == sample.client_id
    assert clients[sample.client_external_id].first_name is not None

    followed = await sync(database, settings, SyncKind.clients)

    assert followed.counts.updated == len(expected_clients)
    assert followed.counts.created == 40 - len(expected_clients)
    assert await count(database, Client, sync_status=SyncStatus.synced.value) == 40


async def test_incremental_sync_fetches_changes_and_deletions_only(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.clients)
    touched = emulator.apply_changes(
        "clients",
        update=["c0000003", "c0000011", "c0000025"],
        delete=["c0000004", "c0000030"],
        create=2,
    )

    report = await sync(database, settings, SyncKind.clients)

    assert report.status == "succeeded", report.error
    assert report.mode == "incremental"
    assert report.counts.fetched == 7
    assert (report.counts.updated, report.counts.deleted, report.counts.created) == (3, 2, 2)
    clients = await clients_by_id(database)
    assert clients["c0000003"].phone == emulator.client(3, version=1)["phone"]
    assert clients["c0000004"].deleted_at is not None
    assert clients["c0000030"].deleted_at is not None
    assert all(clients[i].deleted_at is None for i in touched["created"])
    assert await count(database, Client, deleted_at=None) == 40


async def test_records_changed_at_the_cursor_itself_are_not_lost(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.clients)
    state = await state_of(database, SyncKind.clients)
    assert state is not None
    assert state.cursor is not None
    # A change stamped exactly at the cursor: upstream committed it as the first page was served.
    emulator.changes["clients"][9] = Change(version=1, updated_at=state.cursor)
    emulator._ordered.clear()

    report = await sync(database, settings, SyncKind.clients)

    assert report.mode == "incremental"
    assert report.counts.updated == 1
    assert (await clients_by_id(database))["c0000009"].phone == emulator.client(9, 1)["phone"]


async def test_a_full_sync_marks_records_missing_upstream_deleted(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.appointments)
    emulator.apply_changes("appointments", update=[], delete=["a0000005", "a0000050"], create=0)

    report = await sync(database, settings, SyncKind.appointments, full=True)

    assert (report.mode, report.counts.deleted, report.counts.unchanged) == ("full", 2, 98)
    appointments = await appointments_by_id(database)
    assert appointments["a0000005"].deleted_at is not None
    assert appointments["a0000006"].deleted_at is None


async def test_an_api_that_ignores_updated_since_gets_a_full_sync(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.clients)
    emulator.apply_changes("clients", update=[], delete=["c0000002"], create=0)
    emulator.ignore_updated_since = True

    report = await sync(database, settings, SyncKind.clients)

    assert report.mode == "full"
    assert (report.counts.fetched, report.counts.deleted) == (39, 1)


async def test_every_time_format_lands_as_the_same_utc_instant(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    emulator.reset(
        EmulatorConfig(clients=10, appointments=60, api_key=API_KEY, naive_zone="America/New_York")
    )
    zoned = settings.model_copy(update={"wellness_api_timezone": "America/New_York"})

    report = await sync(database, zoned, SyncKind.appointments)

    assert report.counts.created == 60
    appointments = await appointments_by_id(database)
    shapes = set()
    for index in range(1, 61):
        raw = emulator.appointment(index)
        shapes.add(tuple(sorted(k for k in raw if k in {"start_time", "date", "duration_minutes"})))
        local = appointments[raw["id"]]
        assert local.starts_at == emulator.appointment_start(index), raw
        assert local.starts_at.tzinfo is not None
        assert local.ends_at is not None
        assert local.ends_at > local.starts_at
    assert len(shapes) == 3  # start_time (ISO or epoch), date + start, start_time + duration


async def test_wrong_credentials_stop_the_run_and_keep_the_data(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.clients)
    wrong = settings.model_copy(update={"wellness_api_key": SecretStr("not-the-key")})

    report = await sync(database, wrong, SyncKind.clients, full=True)

    assert report.status == "failed"
    assert report.error is not None
    assert "rejected the credentials" in report.error
    assert "JUNCTION_WELLNESS_API_KEY" in report.error
    assert not report.retryable
    assert emulator.requests["401"] == 1
    assert await count(database, Client, deleted_at=None) == 40
    assert (await runs(database))[-1].error == report.error
    state = await state_of(database, SyncKind.clients)
    assert state is not None
    assert await lease_holder_of(database, SyncKind.clients) is None


async def test_429_is_waited_out_as_retry_after_says(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    emulator.set_mode(Mode("rate_limit", count=1, retry_after=1))

    report = await sync(database, settings, SyncKind.clients)

    assert report.status == "succeeded", report.error
    assert emulator.requests["429"] == 1
    assert emulator.requests["429_early"] == 0
    assert report.counts.created == 40


async def test_500_then_success(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    emulator.set_mode(Mode("error", count=2))

    report = await sync(database, settings, SyncKind.clients)

    assert report.status == "succeeded", report.error
    assert emulator.requests["500"] == 2
    assert report.counts.created == 40


async def test_an_api_that_keeps_failing_fails_the_run_without_inventing_data(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.clients)
    emulator.apply_changes("clients", update=["c0000001"], delete=[], create=0)
    emulator.set_mode(Mode("error"))

    report = await sync(database, settings, SyncKind.clients)

    assert report.status == "failed"
    assert report.retryable
    assert report.error is not None
    assert "HTTP 500" in report.error
    assert "3 attempts" in report.error
    assert emulator.requests["500"] == 3
    clients = await clients_by_id(database)
    assert len(clients) == 40
    assert clients["c0000001"].phone == emulator.client(1)["phone"]  # the last good data
    before = await state_of(database, SyncKind.clients)
    assert before is not None
    assert before.cursor == (await runs(database))[0].cursor_to


async def test_a_timeout_fails_the_run_and_says_so(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    emulator.set_mode(Mode("slow", delay=1.0))
    impatient = settings.model_copy(
        update={"wellness_api_timeout_seconds": 0.2, "wellness_api_retry_attempts": 1}
    )

    report = await sync(database, impatient, SyncKind.clients)

    assert report.status == "failed"
    assert report.error is not None
    assert "Timeout" in report.error
    assert await count(database, Client) == 0


async def test_a_slow_answer_within_the_retries_still_lands(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    emulator.set_mode(Mode("slow", count=1, delay=1.0))
    impatient = settings.model_copy(update={"wellness_api_timeout_seconds": 0.3})

    report = await sync(database, impatient, SyncKind.clients)

    assert report.status == "succeeded", report.error
    assert report.counts.created == 40


async def test_malformed_records_are_set_aside_and_the_rest_lands(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    await sync(database, settings, SyncKind.appointments)
    emulator.set_mode(Mode("malformed", every=10))

    report = await sync(database, settings, SyncKind.appointments, full=True)

    assert report.status == "succeeded", report.error
    assert (report.counts.set_aside, report.counts.unchanged, report.counts.deleted) == (10, 90, 0)
    async with database.reading() as session:
        letters = list((await session.scalars(select(DeadLetter).order_by(DeadLetter.id))).all())
    assert len(letters) == 10
    assert {letter.run_id for letter in letters} == {report.run_id}
    assert all(letter.error for letter in letters)
    with_ids = [letter for letter in letters if letter.external_id]
    without_ids = [letter for letter in letters if not letter.external_id]
    assert without_ids
    assert all("id" in letter.error for letter in without_ids)
    appointments = await appointments_by_id(database)
    for letter in with_ids:
        kept = appointments[letter.external_id or ""]
        assert kept.sync_status == SyncStatus.error
        assert kept.sync_errors == letter.error
    assert await count(database, Appointment, sync_status=SyncStatus.synced.value) == 90 + len(
        without_ids
    )

    emulator.set_mode(Mode())
    healed = await sync(database, settings, SyncKind.appointments, full=True)

    assert healed.counts.updated == len(with_ids)
    assert await count(database, Appointment, sync_status=SyncStatus.synced.value) == 100
    async with database.reading() as session:
        resolved = await session.scalars(
            select(DeadLetter.external_id).where(DeadLetter.resolved_at.is_not(None))
        )
        assert set(resolved) == {letter.external_id for letter in with_ids}


async def test_a_page_that_is_not_json_fails_the_run(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    emulator.set_mode(Mode("invalid_json"))

    report = await sync(database, settings, SyncKind.clients)

    assert report.status == "failed"
    assert report.error is not None
    assert "not JSON" in report.error
    assert not report.retryable


async def test_no_url_means_no_sync_and_no_made_up_data(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    unset = settings.model_copy(update={"wellness_api_url": None, "demo": False})

    report = await sync(database, unset, SyncKind.clients)

    assert report.status == "failed"
    assert report.error is not None
    assert "JUNCTION_WELLNESS_API_URL" in report.error
    assert await count(database, Client) == 0


async def test_a_run_waits_for_the_lease_of_a_running_one(
    database: Database, settings: Settings, emulator: WellnessEmulator
) -> None:
    emulator.set_mode(Mode("slow", delay=0.05))
    first = asyncio.create_task(sync(database, settings, SyncKind.clients))
    second = asyncio.create_task(sync(database, settings, SyncKind.clients, full=True))

    reports = await asyncio.gather(first, second)

    assert [r.status for r in reports] == ["succeeded", "succeeded"]
    history = await runs(database)
    assert len(history) == 2
    # One after the other: the later one started only once the earlier one had finished.
    earlier, later = sorted(history, key=lambda run: run.started_at)
    assert earlier.finished_at is not None
    assert later.started_at >= earlier.finished_at
