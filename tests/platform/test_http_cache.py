"""Cached reads: a hit is answered before routing, anything else reaches the route."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from starlette.applications import Starlette
from starlette.datastructures import QueryParams

from junction.platform.cache import CACHE_LOOKUPS, MemoryCache, get_or_build
from junction.platform.http_cache import (
    CachedRead,
    CachedReadsMiddleware,
    cached_answer,
    entry_of,
)
from junction.platform.middleware import RequestContextMiddleware

NAMESPACE = "things"


async def _suffix_of(app: Starlette, query: QueryParams) -> str | None:
    """The route's key for ``n`` when it is a plain number; anything else goes on."""
    n = query.get("n", "")
    return f"n:{n}" if n.isdigit() else None


def _create_app() -> FastAPI:
    app = FastAPI()
    app.state.cache = MemoryCache(max_entries=10, ttl_seconds=60)
    app.state.route_calls = 0
    read = CachedRead("/things", NAMESPACE, _suffix_of, lambda _: 30)
    app.add_middleware(CachedReadsMiddleware, reads=[read])
    app.add_middleware(RequestContextMiddleware, max_body_bytes=1024)

    @app.get("/things")
    async def things(request: Request, n: int) -> Response:
        app.state.route_calls += 1

        async def build() -> bytes:
            return entry_of(f'{{"n": {n}}}'.encode())

        entry, hit = await get_or_build(app.state.cache, NAMESPACE, f"n:{n}", build)
        return cached_answer(entry, hit, 30, request.headers.get("if-none-match"))

    return app


@pytest.fixture
async def app_client() -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = _create_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield app, client


def _hits() -> float:
    return float(CACHE_LOOKUPS.labels(NAMESPACE, "hit")._value.get())


async def test_a_hit_is_answered_without_the_route(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    hits_before = _hits()
    first = await client.get("/things", params={"n": "7"})
    second = await client.get("/things", params={"n": "7"})

    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.content == second.content == b'{"n": 7}'
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["cache-control"] == "public, max-age=30"
    assert "x-request-id" in second.headers
    assert app.state.route_calls == 1
    assert _hits() == hits_before + 1  # counted once, by the middleware


async def test_if_none_match_gets_a_304_before_routing(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    etag = (await client.get("/things", params={"n": "1"})).headers["etag"]
    not_modified = await client.get("/things", params={"n": "1"}, headers={"If-None-Match": etag})
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert app.state.route_calls == 1


async def test_declined_parameters_and_other_methods_reach_the_route(
    app_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_client
    await client.get("/things", params={"n": "2"})
    refused = await client.get("/things", params={"n": "two"})
    posted = await client.post("/things", params={"n": "2"})
    assert refused.status_code == 422  # the route's own validation answered
    assert posted.status_code == 405
    assert app.state.route_calls == 1
