"""Helpers of the profiles tests: a profile to create, clients holding keys, stored files."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from junction.platform.auth import Scope, create_api_key

ADA: dict[str, Any] = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "Ada@Example.com",
    "date_of_birth": "1985-12-10",
}


PROFILE_QUEUES = ("sync:4", "default:2")


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


def stored_files(folder: Path) -> list[Path]:
    """Every file under the storage folder, temporary ones included."""
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []
