"""API keys: created by the CLI, stored hashed, checked per scope."""

from __future__ import annotations

import asyncio
import hashlib
import sys

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import select

from junction.platform.auth import ApiKey, Principal, Scope, create_api_key, require_scope
from junction.platform.db import Database
from junction.settings import Settings
from tests.support.live import environment_for


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    @app.post("/test/things", status_code=201)
    async def create_thing(
        principal: Principal = Depends(require_scope(Scope.write)),
    ) -> dict[str, str]:
        return {"created_by": principal.key_id}

    return app


async def _key(settings: Settings, *scopes: Scope) -> str:
    database = Database(settings)
    try:
        async with database.transaction() as session:
            _, plain = await create_api_key(session, "test", scopes)
    finally:
        await database.dispose()
    return plain


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/things")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"errors": ["Authorization: Bearer <api key> is required"]}


async def test_unknown_or_tampered_key_is_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    plain = await _key(settings, Scope.write)
    for bad in ("nonsense", plain[:-1] + ("A" if plain[-1] != "A" else "B"), "jk__"):
        response = await client.post("/test/things", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401
        assert response.json() == {"errors": ["The API key is invalid or revoked"]}


async def test_scope_is_enforced(client: httpx.AsyncClient, settings: Settings) -> None:
    reader = await _key(settings, Scope.read)
    writer = await _key(settings, Scope.write)
    admin = await _key(settings, Scope.admin)
    forbidden = await client.post("/test/things", headers={"Authorization": f"Bearer {reader}"})
    assert forbidden.status_code == 403
    assert forbidden.json() == {"errors": ["The API key lacks the 'write' scope"]}
    for key in (writer, admin):
        allowed = await client.post("/test/things", headers={"Authorization": f"Bearer {key}"})
        assert allowed.status_code == 201


async def test_cli_creates_a_hashed_key_once(client: httpx.AsyncClient, settings: Settings) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "junction", "keys", "create", "--scope", "write", "-s", "read", "--name", "ci"),
        env=environment_for(settings),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output
    plain = output.decode().strip().splitlines()[-1]
    assert plain.startswith("jk_")
    database = Database(settings)
    try:
        async with database.reading() as session:
            stored = (await session.scalars(select(ApiKey))).one()
    finally:
        await database.dispose()
    assert stored.name == "ci"
    assert stored.scopes == ["read", "write"]
    assert stored.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    response = await client.post("/test/things", headers={"Authorization": f"Bearer {plain}"})
    assert response.json() == {"created_by": stored.id}
