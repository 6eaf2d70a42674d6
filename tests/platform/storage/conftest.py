"""Storage settings on a folder of the test's own, with links on a fixed base URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from junction.platform.storage import LocalStorage, install_storage
from junction.settings import Settings
from tests.support.storage import PUBLIC_BASE_URL, configured


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return configured(settings, storage_path=tmp_path / "files", public_base_url=PUBLIC_BASE_URL)


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    install_storage(app)
    return app


@pytest.fixture
async def local_storage(settings: Settings) -> AsyncIterator[LocalStorage]:
    storage = LocalStorage(settings)
    yield storage
    await storage.close()
