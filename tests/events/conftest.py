"""Fixtures of the events tests: the provider emulator over real HTTP and fast-failing
provider settings (helpers to run a sync are in ``tests/support/events.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from junction.emulators.provider import create_app as create_provider_emulator
from junction.settings import Settings
from tests.support.live import serving_in_thread


@pytest.fixture(scope="session")
def provider_emulator() -> Iterator[str]:
    """The provider emulator served by uvicorn on a free loopback port, for the session."""
    with serving_in_thread(create_provider_emulator(), "provider emulator") as url:
        yield url


@pytest.fixture
def settings(settings: Settings, provider_emulator: str) -> Settings:
    return settings.model_copy(
        update={
            "provider_url": f"{provider_emulator}/api/events?mode=fixed&response=1",
            "provider_read_timeout_seconds": 2.0,
            "provider_connect_timeout_seconds": 1.0,
            "provider_attempts": 2,
            "events_cache_version_check_seconds": 0.0,
        }
    )


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client
