"""Fixtures of the profiles tests: the app with its files in a temporary folder, and keys."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from junction.app import create_app
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.platform.jobs.models import Job
from junction.settings import Settings
from tests.conftest import running


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


@contextlib.asynccontextmanager
async def keyed_client(app: FastAPI, *scopes: Scope) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` (in process) holding a new key with ``scopes``."""
    async with app.state.database.transaction() as session:
        _, plain = await create_api_key(session, "profiles tests", scopes)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://junction.test",
        headers={"Authorization": f"Bearer {plain}"},
    ) as client:
        yield client


@pytest.fixture
async def api(profiles_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a read + write key."""
    async with keyed_client(profiles_app, Scope.read, Scope.write) as client:
        yield client


def stored_files(folder: Path) -> list[Path]:
    """Every file under the storage folder, temporary ones included."""
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


ADA: dict[str, Any] = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "Ada@Example.com",
    "date_of_birth": "1985-12-10",
}


PROFILE_QUEUES = ("sync:4", "default:2")


async def jobs_settled(database: Database, timeout: float = 30) -> list[Job]:
    """Wait until no job is queued or running; answers every job."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with database.reading() as session:
            jobs = list((await session.scalars(select(Job))).all())
        if all(job.state in ("succeeded", "dead") for job in jobs):
            return jobs
        if loop.time() > deadline:
            raise AssertionError(f"jobs still pending: {[(j.name, j.state) for j in jobs]}")
        await asyncio.sleep(0.05)
