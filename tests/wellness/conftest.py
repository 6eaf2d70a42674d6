"""Fixtures of the wellness tests: the wellness emulator over real HTTP (one server for the
session, reset before each test) and settings pointing at it with small backoffs (helpers
are in ``tests/support/wellness.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

import junction.wellness.jobs  # noqa: F401  (registers the sync jobs in this process too)
from junction.emulators.wellness import WellnessEmulator, create_wellness_emulator
from junction.settings import Settings
from tests.support.live import serving_in_thread
from tests.support.wellness import API_KEY, SMALL, ServedEmulator


@pytest.fixture(scope="session")
def served_emulator() -> Iterator[ServedEmulator]:
    """The wellness emulator served by uvicorn on a free loopback port, for the session."""
    state = WellnessEmulator(SMALL)
    with serving_in_thread(create_wellness_emulator(state), "wellness emulator") as url:
        yield ServedEmulator(url, state)


@pytest.fixture
def emulator(served_emulator: ServedEmulator) -> WellnessEmulator:
    served_emulator.state.reset(SMALL)
    return served_emulator.state


@pytest.fixture
def settings(settings: Settings, served_emulator: ServedEmulator) -> Settings:
    return settings.model_copy(
        update={
            "wellness_api_url": served_emulator.base_url,
            "wellness_api_key": SecretStr(API_KEY),
            "wellness_api_timeout_seconds": 5.0,
            "wellness_api_retry_attempts": 2,
            "wellness_api_backoff_seconds": 0.01,
            "wellness_page_size": 7,
            "wellness_sync_lease_seconds": 30.0,
        }
    )
