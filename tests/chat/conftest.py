"""Fixtures of the chat tests (their builders are in ``tests/support/chat.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from junction.settings import Settings
from tests.support.chat import GENEROUS_LIMITS
from tests.support.live import LiveServer, start_live_server


@pytest.fixture(scope="package")
def chat_server(migrated_database_url: str) -> Iterator[LiveServer]:
    """One real server (with its embedded worker) shared by the chat tests: starting one
    costs seconds, and tables are emptied after each test anyway."""
    settings = Settings(
        env="test",
        database_url=migrated_database_url,
        redis_url=os.environ.get("JUNCTION_TEST_REDIS_URL"),
    )
    with start_live_server(settings, JUNCTION_RATE_LIMITS=GENEROUS_LIMITS) as server:
        yield server
