"""Redis clients queue commands beyond their pool's size instead of failing them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from junction.platform.ratelimit import RATE_LIMIT_FALLBACKS, RateLimiter
from junction.platform.redis_pool import open_redis
from junction.settings import Settings
from tests.conftest import TEST_REDIS_URL


def test_no_client_without_a_redis_url(settings: Settings) -> None:
    assert open_redis(settings.model_copy(update={"redis_url": None})) is None


@pytest.mark.redis
@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs JUNCTION_TEST_REDIS_URL")
async def test_a_burst_beyond_the_pool_waits_for_connections(settings: Settings) -> None:
    limited = settings.model_copy(update={"redis_max_connections": 2})
    redis = open_redis(limited, client_name="junction-pool-test")
    assert redis is not None
    caller = f"burst-{uuid.uuid4().hex}"
    try:
        # One request earned back every 3.6 s: none comes back during the burst.
        limiter = RateLimiter({"default": "1000/hour"}, redis)
        fallbacks = RATE_LIMIT_FALLBACKS._value.get()
        verdicts = await asyncio.gather(*(limiter.hit("default", caller) for _ in range(50)))
        # Every check reached Redis (none fell back to memory), one counter for all.
        assert RATE_LIMIT_FALLBACKS._value.get() == fallbacks
        assert sorted(v.remaining for v in verdicts) == list(range(950, 1000))
        clients = await redis.client_list()
        assert 1 <= sum(c["name"] == "junction-pool-test" for c in clients) <= 2
    finally:
        await redis.delete(f"junction:ratelimit:default:{caller}")
        await redis.aclose()
