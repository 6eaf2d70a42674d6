"""The sync kit: the lease, the run record, dead letters, and the migration that carried
the provider feed's and the wellness sync's history over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from junction.platform.db import Database, utcnow
from junction.platform.integrations import (
    DeadLetter,
    IntegrationRun,
    LeaseHeld,
    RunCounts,
    RunStatus,
    SetAside,
    acquire_lease,
    add_counts,
    extend_lease,
    finish_run,
    open_run,
    read_ahead,
    release_lease,
    resolve_dead_letters,
    set_aside,
)
from junction.platform.migrations import alembic_config
from junction.settings import Settings

KIT_REVISION = "4a8c2e6f0b13"


async def test_a_lease_is_held_until_it_expires_then_taken_over(database: Database) -> None:
    async with database.transaction() as session:
        assert await acquire_lease(session, "t:kind", "first", timedelta(seconds=60)) is None
    with pytest.raises(LeaseHeld):
        async with database.transaction() as session:
            await acquire_lease(session, "t:kind", "second", timedelta(seconds=60))
    async with database.transaction() as session:
        assert await extend_lease(session, "t:kind", "first", timedelta(seconds=-1))
    async with database.transaction() as session:
        taken_from = await acquire_lease(session, "t:kind", "second", timedelta(seconds=60))
    async with database.transaction() as session:
        assert not await extend_lease(session, "t:kind", "first", timedelta(seconds=60))
        assert not await release_lease(session, "t:kind", "first")
        assert await release_lease(session, "t:kind", "second")
    async with database.transaction() as session:
        assert await acquire_lease(session, "t:kind", "third", timedelta(seconds=60)) is None
    assert taken_from == "first"


async def test_a_run_records_its_counts_and_sets_records_aside(database: Database) -> None:
    async with database.transaction() as session:
        report = await open_run(session, "test", "things", "manual", mode="full")
    async with database.transaction() as session:
        await add_counts(session, report, RunCounts(fetched=3, created=2, set_aside=1))
        await set_aside(session, report, [SetAside("x1", {"raw": 1}, "bad date")], utcnow())
    async with database.transaction() as session:
        await add_counts(session, report, RunCounts(fetched=1, unchanged=1))
        await finish_run(session, report, RunStatus.succeeded, rows_written=2, notes=["note"])
    async with database.transaction() as session:
        await resolve_dead_letters(session, "test", "things", ["x1"], utcnow())

    async with database.reading() as session:
        run = await session.get_one(IntegrationRun, report.run_id)
        letter = await session.scalar(select(DeadLetter))
    assert (run.fetched, run.created, run.unchanged, run.set_aside) == (4, 2, 1, 1)
    assert (run.status, run.rows_written, run.notes) == ("succeeded", 2, ["note"])
    assert report.as_message({"set_aside": "failed"})["counts"]["failed"] == 1
    assert letter is not None
    assert (letter.payload, letter.error, letter.resolution) == (
        {"raw": 1},
        "bad date",
        "superseded",
    )


def test_the_migration_carries_runs_dead_letters_and_leases_over(
    tmp_path: Path, settings: Settings
) -> None:
    if not settings.is_sqlite:
        pytest.skip("runs on a database of its own, built here on SQLite")
    url = f"sqlite:///{tmp_path / 'before.db'}"
    config = alembic_config(Settings(database_url=url))
    command.upgrade(config, "9d4e2b7c1a60")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in _OLD_ROWS:
            connection.execute(sa.text(statement))
    command.upgrade(config, KIT_REVISION)
    with engine.connect() as connection:
        runs = connection.execute(
            sa.text(
                "SELECT id, integration, kind, set_aside, rows_written, notes"
                " FROM integration_runs ORDER BY id"
            )
        ).all()
        letters = connection.execute(
            sa.text(
                "SELECT integration, kind, run_id, external_id, resolution"
                " FROM integration_dead_letters"
            )
        ).all()
        leases = connection.execute(sa.text("SELECT name, holder FROM integration_leases")).all()
        tables = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    assert [tuple(r[:5]) for r in runs] == [
        (1, "events", "feed", 0, 12),
        (2, "events", "feed", 1, 0),
        (3, "wellness", "clients", 1, 5),
    ]
    assert '"2021-09-31' in runs[1][5]
    assert [tuple(r) for r in letters] == [("wellness", "clients", 3, "c-9", None)]
    assert [tuple(r) for r in leases] == [("wellness:clients", "3")]
    assert not tables & {"event_sync_runs", "wellness_sync_runs", "wellness_dead_letters"}


_NOW = "'2026-12-01 10:00:00.000000'"
_OLD_ROWS = [
    "INSERT INTO event_sync_runs (id, trigger, source, status, started_at, finished_at, created,"
    " updated, unchanged, skipped, rows_written, feed_bytes, errors) VALUES (1, 'schedule', 'u',"
    f" 'succeeded', {_NOW}, {_NOW}, 3, 0, 0, 0, 12, 900, '[]')",
    "INSERT INTO event_sync_runs (id, trigger, source, status, started_at, finished_at, created,"
    " updated, unchanged, skipped, rows_written, feed_bytes, errors) VALUES (2, 'api', 'u',"
    f" 'succeeded', {_NOW}, {_NOW}, 0, 0, 3, 1, 0, 900, '[\"2021-09-31 is not a date\"]')",
    "INSERT INTO wellness_sync_runs (id, kind, trigger, mode, status, started_at, fetched,"
    " created, updated, unchanged, deleted, failed) VALUES (1, 'clients', 'schedule', 'full',"
    f" 'running', {_NOW}, 6, 5, 0, 0, 0, 1)",
    "INSERT INTO wellness_dead_letters (run_id, kind, external_id, payload, error, created_at)"
    f" VALUES (1, 'clients', 'c-9', '{{}}', 'no email', {_NOW})",
    "INSERT INTO wellness_sync_state (kind, holder_run_id, lease_expires_at) VALUES"
    f" ('clients', 1, {_NOW})",
]


async def test_read_ahead_fetches_the_next_page_while_the_current_one_lands() -> None:
    fetched: list[int] = []

    async def pages() -> AsyncIterator[int]:
        for number in range(3):
            fetched.append(number)
            yield number

    landed = []
    async for page in read_ahead(pages()):
        await asyncio.sleep(0)  # landing the page: the next fetch runs meanwhile
        assert fetched[-1] == min(page + 1, 2), fetched
        landed.append(page)
    assert landed == [0, 1, 2]


async def test_read_ahead_raises_a_failed_fetch_and_drops_an_unwanted_one() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("page 2 could not be read")

    with pytest.raises(RuntimeError, match="page 2"):
        async for _ in read_ahead(failing()):
            pass

    async def endless() -> AsyncIterator[int]:
        number = 0
        while True:
            number += 1
            yield number

    async with aclosing(read_ahead(endless())) as pages:
        async for page in pages:
            if page == 2:
                break  # the page read ahead (3) is dropped, its task cancelled: no leak
    assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
