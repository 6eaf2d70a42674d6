"""Rate limits per route group: 429 with Retry-After and X-RateLimit-* headers."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI

from junction.platform.ratelimit import rate_limit
from junction.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"rate_limits": {"default": "1000/minute", "tiny": "3/minute"}}
    )


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    @app.get("/test/limited", dependencies=[Depends(rate_limit("tiny"))])
    async def limited() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/test/default", dependencies=[Depends(rate_limit("default"))])
    async def default() -> dict[str, bool]:
        return {"ok": True}

    return app


async def test_limit_answers_429_with_headers(client: httpx.AsyncClient) -> None:
    remaining = []
    for _ in range(3):
        response = await client.get("/test/limited")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "3"
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == [2, 1, 0]
    refused = await client.get("/test/limited")
    assert refused.status_code == 429
    assert refused.json()["errors"][0].startswith("Rate limit of 3 per 1 minute exceeded")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining"] == "0"


async def test_groups_are_counted_separately(client: httpx.AsyncClient) -> None:
    for _ in range(4):
        await client.get("/test/limited")
    response = await client.get("/test/default")
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit"] == "1000"
