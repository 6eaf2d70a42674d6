"""/up, /health and /ready, including readiness while dependencies are down."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from junction.app import create_app
from junction.platform.migrations import upgrade_to_head
from junction.settings import LogFormat, Settings
from tests.support.app import running
from tests.support.live import free_port


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/up")).status_code == 200
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


async def test_not_ready_while_the_database_is_down(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"
    down = settings.model_copy(
        update={
            "database_url": unreachable,
            "database_startup_attempts": 3,
            "redis_url": None,
            "log_format": LogFormat.json,
        }
    )
    app = create_app(down)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health")).status_code == 200
            response = await client.get("/ready")
            assert response.status_code == 503
            errors = response.json()["errors"]
            assert len(errors) == 1
            assert errors[0].startswith("database: unavailable")
            await asyncio.sleep(1.8)  # two retries: 0.5 s, then 1 s
    retries = [
        json.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if "database unreachable, retrying" in line
    ]
    assert [line["attempt"] for line in retries] == [1, 2]


async def test_not_ready_until_migrations_are_applied(settings: Settings) -> None:
    app = create_app(settings)
    async with running(app):
        while not app.state.startup.migrated:
            await asyncio.sleep(0.01)
        app.state.startup.migrated = False
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "migrations not applied yet"


async def test_a_web_process_that_may_not_migrate_is_ready_once_the_migrate_step_ran(
    settings: Settings, tmp_path: Path
) -> None:
    fresh = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", "redis_url": None}
    )
    app = create_app(fresh)  # migrate_on_start is off, as in every scaled deployment
    transport = httpx.ASGITransport(app=app)
    async with running(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        while not app.state.startup.database_reachable:
            await asyncio.sleep(0.01)
        before = await client.get("/ready")
        await asyncio.to_thread(upgrade_to_head, fresh)  # the migrate step, elsewhere
        async with asyncio.timeout(30):
            while (await client.get("/ready")).status_code != 200:
                await asyncio.sleep(0.1)

    assert before.status_code == 503
    assert before.json()["checks"]["database"] == "migrations not applied yet"


async def test_not_ready_while_redis_is_down(settings: Settings) -> None:
    down = settings.model_copy(
        update={"redis_url": SecretStr(f"redis://127.0.0.1:{free_port()}/0")}
    )
    app = create_app(down)
    async with running(app):
        while not app.state.startup.migrated:
            await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["errors"][0].startswith("redis: unavailable")
