"""Rate limits per route group: 429 with Retry-After and X-RateLimit-* headers, and the
GCRA limiter under them, in memory and in Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from limits import parse
from redis.asyncio import Redis

from junction.platform.ratelimit import (
    MEMORY_PRUNE_AT,
    RATE_LIMIT_FALLBACKS,
    MemoryCounters,
    Rate,
    RateLimiter,
    rate_limit,
)
from junction.settings import Settings
from tests.support.environment import TEST_REDIS_URL
from tests.support.live import free_port


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


# --- the limiter itself: GCRA in memory and in Redis -----------------------------------


@pytest.fixture
async def redis_clients() -> AsyncIterator[list[Redis]]:
    """Two Redis clients (two processes' worth) when the tests have Redis, else none."""
    clients = [Redis.from_url(TEST_REDIS_URL) for _ in range(2)] if TEST_REDIS_URL else []
    yield clients
    for redis in clients:
        await redis.aclose()


async def test_the_allowance_is_spent_at_once_and_earned_back_steadily(
    redis_clients: list[Redis],
) -> None:
    stores: list[Redis | None] = [None, *redis_clients[:1]]  # memory, and Redis if present
    for redis in stores:
        limiter = RateLimiter({"default": "2/second"}, redis)
        first, second, third = [await limiter.hit("default", "caller") for _ in range(3)]
        assert (first.allowed, first.remaining) == (True, 1)
        assert (second.allowed, second.remaining) == (True, 0)
        assert not third.allowed
        # One request comes back every half second; the whole allowance in one second
        # (less the time the three checks took).
        assert 0 < third.retry_after <= 0.5
        assert 0.5 < third.reset_after <= 1.0
        await asyncio.sleep(third.retry_after + 0.05)
        again = await limiter.hit("default", "caller")
        assert (again.allowed, again.remaining) == (True, 0)
        assert not (await limiter.hit("default", "caller")).allowed
        assert (await limiter.hit("default", "another caller")).allowed


@pytest.mark.redis
@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs JUNCTION_TEST_REDIS_URL")
async def test_processes_share_the_counters_in_redis(redis_clients: list[Redis]) -> None:
    one, other = (RateLimiter({"default": "3/minute"}, redis) for redis in redis_clients)
    verdicts = [await limiter.hit("default", "caller") for limiter in (one, other, one, other)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert 19 < verdicts[-1].retry_after <= 20


@pytest.mark.redis
@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs JUNCTION_TEST_REDIS_URL")
async def test_concurrent_checks_share_a_round_trip_and_count_exactly(
    redis_clients: list[Redis],
) -> None:
    limiter = RateLimiter({"default": "20/minute"}, redis_clients[0])
    script, script_runs = limiter._script, 0
    assert script is not None

    async def counted(**arguments: Any) -> Any:
        nonlocal script_runs
        script_runs += 1
        return await script(**arguments)

    limiter._script = counted  # type: ignore[assignment]
    caller, other = f"caller-{uuid.uuid4()}", f"other-{uuid.uuid4()}"
    await limiter.hit("default", other)
    verdicts = await asyncio.gather(
        *(limiter.hit("default", caller if n % 5 else other) for n in range(50))
    )
    assert script_runs == 2  # the lone check, then all 50 at once
    mine = [v for n, v in enumerate(verdicts) if n % 5]
    theirs = [v for n, v in enumerate(verdicts) if not n % 5]
    assert [v.allowed for v in mine] == [True] * 20 + [False] * 20
    assert [v.remaining for v in mine[:20]] == list(range(19, -1, -1))
    assert all(v.allowed for v in theirs)  # 1 + 10 of their 20
    assert [v.remaining for v in theirs] == list(range(18, 8, -1))


async def test_redis_unreachable_falls_back_to_memory_and_counts_it() -> None:
    async with Redis.from_url(f"redis://127.0.0.1:{free_port()}/0") as unreachable:
        limiter = RateLimiter({"default": "1/minute"}, unreachable)
        before = RATE_LIMIT_FALLBACKS._value.get()
        assert (await limiter.hit("default", "caller")).allowed
        assert not (await limiter.hit("default", "caller")).allowed
        assert RATE_LIMIT_FALLBACKS._value.get() == before + 2


async def test_a_silent_redis_is_tried_once_per_retry_window() -> None:
    """A Redis that accepts connections but never answers costs the socket's timeout per
    call: after the first failure, the limiter leaves it alone for the window."""
    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # never answers; returns when the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Redis(port=port, socket_timeout=0.2, socket_connect_timeout=0.2) as redis:
            limiter = RateLimiter({"default": "5/minute"}, redis, retry_seconds=60)
            before = RATE_LIMIT_FALLBACKS._value.get()
            verdicts = [await limiter.hit("default", "caller") for _ in range(8)]
            assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 3
            assert RATE_LIMIT_FALLBACKS._value.get() == before + 8
            tried = connections
            assert tried >= 1
            for _ in range(20):
                await limiter.hit("default", "another caller")
            assert connections == tried
    finally:
        server.close()


def test_memory_forgets_callers_whose_allowance_is_whole_again() -> None:
    counters = MemoryCounters()
    rate = Rate(parse("1000/second"))
    for index in range(MEMORY_PRUNE_AT):
        counters.hit(f"caller {index}", rate)
    time.sleep(0.01)  # long enough for every one of them to be whole again
    counters.hit("one more", rate)
    assert counters.tracked() == 1


def test_one_per_period_is_allowed_whatever_the_clock_reads() -> None:
    # (4194270.847678307 + 60) - 60 rounds above 4194270.847678307: a check that compared
    # absolute times refused this caller's very first request.
    counters = MemoryCounters(clock=lambda: 4194270.847678307)
    rate = Rate(parse("1/minute"))
    first, second = counters.hit("caller", rate), counters.hit("caller", rate)
    assert (first.allowed, first.remaining, first.reset_after) == (True, 0, 60.0)
    assert not second.allowed
    assert second.retry_after == pytest.approx(60.0)
