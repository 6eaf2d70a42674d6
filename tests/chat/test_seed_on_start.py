"""``junction migrate`` with ``JUNCTION_SEED_ON_START``: seed 001's sample data on the first
start only, as a real process on the test database."""

from __future__ import annotations

import subprocess
import sys

import pytest

from junction.chat import repository
from junction.platform.db import Database
from junction.settings import Settings
from tests.support.live import environment_for

pytestmark = pytest.mark.slow

NOTHING = {"applications": 0, "chats": 0, "messages": 0}


def migrate(settings: Settings, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "junction", "migrate"],
        env=environment_for(settings, COLUMNS="200", **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def chat_rows(settings: Settings) -> dict[str, int]:
    database = Database(settings)
    try:
        async with database.reading() as session:
            return await repository.count_rows(session)
    finally:
        await database.dispose()


async def delete_chat_data(settings: Settings) -> None:
    database = Database(settings)
    try:
        async with database.transaction() as session:
            await repository.delete_everything(session)
    finally:
        await database.dispose()


async def test_migrate_seeds_a_fresh_database_once_and_never_again(settings: Settings) -> None:
    first = migrate(settings, JUNCTION_SEED_ON_START="true")
    assert "seeded 5 applications, 46 chats" in first
    seeded = await chat_rows(settings)
    assert seeded["applications"] == 5
    assert seeded["chats"] == 46
    assert seeded["messages"] > 500

    # The users deleted the sample data; a restart must not bring it back.
    await delete_chat_data(settings)
    second = migrate(settings, JUNCTION_SEED_ON_START="true")
    assert "seeded" not in second
    assert await chat_rows(settings) == NOTHING


async def test_migrate_without_the_setting_seeds_nothing_and_remembers_nothing(
    settings: Settings,
) -> None:
    assert "seeded" not in migrate(settings)
    assert await chat_rows(settings) == NOTHING

    # Not having been asked is not having seeded: turning the setting on later still seeds.
    migrate(settings, JUNCTION_SEED_ON_START="true")
    assert (await chat_rows(settings))["applications"] == 5
