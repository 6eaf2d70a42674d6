"""Storage settings on a folder of the test's own, with links on a fixed base URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from junction.platform.storage import LocalStorage, install_storage
from junction.settings import Settings

PUBLIC_BASE_URL = "http://files.junction.test"


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


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``, hidden partial files included."""
    return sorted(path for path in folder.rglob("*") if path.is_file())


def configured(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with ``changes``, validated as if they came from the environment."""
    return Settings.model_validate(settings.model_dump() | changes)
