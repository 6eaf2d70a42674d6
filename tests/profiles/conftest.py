"""Fixtures of the profiles tests: the app with its files in a temporary folder, and keys
(helpers are in ``tests/support/profiles.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from junction.app import create_app
from junction.platform.auth import Scope
from junction.settings import Settings
from tests.support.app import running
from tests.support.profiles import keyed_client


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def profiles_settings(settings: Settings, files_dir: Path) -> Settings:
    return settings.model_copy(
        update={
            "storage_path": files_dir,
            "public_base_url": "http://junction.test",
            "upload_max_bytes": 1024 * 1024,
        }
    )


@pytest.fixture
async def profiles_app(profiles_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(profiles_settings)
    async with running(app):
        while not app.state.startup.migrated:
            await asyncio.sleep(0.01)
        yield app


@pytest.fixture
async def api(profiles_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a read + write key."""
    async with keyed_client(profiles_app, Scope.read, Scope.write) as client:
        yield client
