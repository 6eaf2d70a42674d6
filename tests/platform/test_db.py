"""The database layer: SQLite pragmas, one commit per request, migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, inspect, select, text
from typer.testing import CliRunner

from junction.cli import app as cli
from junction.platform import db
from junction.platform.auth import ApiKey, Scope, create_api_key
from junction.platform.db import Database, DbSession, pending_after_commit
from junction.settings import Settings, get_settings


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    @app.post("/test/keys", status_code=201)
    async def add_key(session: DbSession, fail: bool = False) -> dict[str, str]:
        api_key, _ = await create_api_key(session, "from-request", [Scope.read])
        if fail:
            raise RuntimeError("failure after the write")
        return {"id": api_key.id}

    return app


async def _count_keys(settings: Settings) -> int:
    database = Database(settings)
    try:
        async with database.reading() as session:
            return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)
    finally:
        await database.dispose()


async def test_request_session_commits_before_answering(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post("/test/keys")
    assert response.status_code == 201
    assert await _count_keys(settings) == 1


async def test_request_session_rolls_back_on_error(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post("/test/keys", params={"fail": "true"})
    assert response.status_code == 500
    assert await _count_keys(settings) == 0


async def test_sqlite_connections_are_configured(settings: Settings) -> None:
    if not settings.is_sqlite:
        pytest.skip("SQLite pragmas")
    database = Database(settings)
    try:
        async with database.write_engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
    finally:
        await database.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 30_000,
        "synchronous": 2,
    }


async def test_constraints_follow_the_naming_convention(settings: Settings) -> None:
    database = Database(settings)
    try:
        async with database.read_engine.connect() as connection:
            pk = await connection.run_sync(lambda sync: inspect(sync).get_pk_constraint("api_keys"))
    finally:
        await database.dispose()
    if not settings.is_sqlite:  # SQLite does not keep primary-key names
        assert pk["name"] == "pk_api_keys"
    assert pk["constrained_columns"] == ["id"]


def test_migrate_command_builds_a_fresh_database(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "nested" / "fresh.db"
    monkeypatch.setenv("JUNCTION_DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["migrate"])
        again = CliRunner().invoke(cli, ["migrate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert again.exit_code == 0, again.output
    assert path.exists()
    import sqlite3

    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"api_keys", "alembic_version"} <= tables


class _Rollback(Exception):
    pass


async def test_gathered_items_are_flushed_once_after_commit_and_dropped_on_rollback(
    settings: Settings,
) -> None:
    database = Database(settings)
    flushed: list[list[object]] = []
    try:

        async def gather_then_fail() -> None:
            async with database.transaction() as session:
                pending_after_commit(session, "test", flushed.append).append("rolled back")
                raise _Rollback

        with pytest.raises(_Rollback):
            await gather_then_fail()
        async with database.transaction() as session:
            pending_after_commit(session, "test", flushed.append).append(1)
            pending_after_commit(session, "test", flushed.append).append(2)
            assert flushed == []
        async with database.transaction() as session:
            pending_after_commit(session, "test", flushed.append).append(3)
    finally:
        await database.dispose()
    assert flushed == [[1, 2], [3]]


async def _backend_pid(database: Database) -> int:
    async with database.transaction() as session:
        return int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)


async def test_a_connection_killed_while_idle_is_replaced_on_checkout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's connection pool")
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
    database, killer = Database(settings), Database(settings)
    try:
        first = await _backend_pid(database)
        async with killer.transaction() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        # Without the ping, this would fail on the dead connection.
        second = await _backend_pid(database)
    finally:
        await database.dispose()
        await killer.dispose()
    assert second not in (0, first)


async def test_only_a_connection_idle_past_the_window_is_pinged(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's connection pool")
    database = Database(settings)
    pings = 0
    do_ping = database.write_engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        nonlocal pings
        pings += 1
        return do_ping(dbapi_connection)

    monkeypatch.setattr(database.write_engine.dialect, "do_ping", counted_ping)
    try:
        monkeypatch.setattr(db, "PING_AFTER_IDLE", 60.0)
        pids = {await _backend_pid(database) for _ in range(3)}
        assert pings == 0
        monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
        pids |= {await _backend_pid(database) for _ in range(2)}
        assert pings == 2
    finally:
        await database.dispose()
    assert len(pids) == 1  # one pooled connection, reused each time


@pytest.mark.parametrize("command", [["seed-summary"], ["jobs", "list"], ["jobs", "schedules"]])
def test_data_commands_migrate_a_database_never_migrated_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("JUNCTION_DATABASE_URL", f"sqlite:///{tmp_path / 'never-migrated.db'}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, command)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "no such table" not in result.output


def test_data_commands_say_what_to_run_when_they_may_not_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUNCTION_DATABASE_URL", f"sqlite:///{tmp_path / 'never-migrated.db'}")
    monkeypatch.setenv("JUNCTION_MIGRATE_ON_START", "false")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["sync", "events"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"The database at sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'} is not "
        "migrated: run `junction migrate`."
    ]


async def test_an_awaited_after_commit_callback_runs_after_the_commit_and_not_on_rollback(
    settings: Settings,
) -> None:
    database = Database(settings)
    seen: list[int] = []

    async def count_keys() -> None:
        async with database.reading() as session:
            seen.append(int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0))

    try:
        async with database.transaction() as session:
            await create_api_key(session, "committed", [Scope.read])
            db.await_after_commit(session, count_keys)

        async def failing_unit_of_work() -> None:
            async with database.transaction() as session:
                await create_api_key(session, "rolled back", [Scope.read])
                db.await_after_commit(session, count_keys)
                raise RuntimeError("the unit of work fails")

        with pytest.raises(RuntimeError):
            await failing_unit_of_work()
    finally:
        await database.dispose()
    assert seen == [1]  # ran once, and saw its own transaction's key committed


async def test_an_awaited_after_rollback_callback_runs_only_when_the_unit_of_work_fails(
    settings: Settings,
) -> None:
    database = Database(settings)
    undone: list[str] = []

    async def undo(name: str) -> None:
        undone.append(name)

    async def unit_of_work(name: str, fail: bool) -> None:
        async with database.transaction() as session:
            await create_api_key(session, name, [Scope.read])
            db.await_after_rollback(session, lambda: undo(name))
            if fail:
                raise RuntimeError("the unit of work fails")

    try:
        await unit_of_work("committed", fail=False)
        with pytest.raises(RuntimeError):
            await unit_of_work("rolled back", fail=True)
    finally:
        await database.dispose()
    assert undone == ["rolled back"]
