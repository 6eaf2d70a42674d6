"""Redis clients queue commands beyond their pool's size instead of failing them; a
failed Redis is left alone for a while by the callers that can do without it."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from junction.platform.ratelimit import RATE_LIMIT_FALLBACKS, RateLimiter
from junction.platform.redis_pool import RedisOutage, open_redis
from junction.settings import Settings
from tests.support.environment import TEST_REDIS_URL


def test_an_outage_is_skipped_for_its_window_then_retried() -> None:
    now = [100.0]
    outage = RedisOutage("test", retry_seconds=5, clock=lambda: now[0])
    assert not outage.skipping
    outage.failed("hit", ConnectionError("refused"))
    now[0] += 4.9
    assert outage.skipping
    now[0] += 0.2
    assert not outage.skipping  # time to try Redis again
    outage.failed("hit", ConnectionError("refused"))  # still down: another window
    now[0] += 4.9
    assert outage.skipping
    outage.answered()
    now[0] += 0.2
    assert not outage.skipping


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
