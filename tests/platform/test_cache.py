"""The platform cache: in-process LRU with TTL, Redis, and the fallback between them."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from junction.platform.cache import CACHE_FALLBACKS, MemoryCache, RedisCache, open_cache
from junction.settings import Settings
from tests.support.environment import TEST_REDIS_URL
from tests.support.live import free_port


async def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2, ttl_seconds=60)
    await cache.set("a", b"1")
    await cache.set("b", b"2")
    assert await cache.get("a") == b"1"  # "b" is now the least recently used
    await cache.set("c", b"3")
    assert (await cache.get("a"), await cache.get("b"), await cache.get("c")) == (b"1", None, b"3")
    assert len(cache) == 2


async def test_memory_cache_entries_expire() -> None:
    cache = MemoryCache(max_entries=10, ttl_seconds=60)
    await cache.set("short", b"x", ttl_seconds=0.01)
    await cache.set("long", b"y")
    await asyncio.sleep(0.05)
    assert (await cache.get("short"), await cache.get("long")) == (None, b"y")


async def test_invalidating_a_namespace_changes_its_keys_only() -> None:
    cache = MemoryCache(max_entries=10, ttl_seconds=60)
    events_key, other_key = await cache.key("events", "q"), await cache.key("other", "q")
    await cache.invalidate("events")
    assert await cache.key("events", "q") != events_key
    assert await cache.key("other", "q") == other_key


async def test_redis_unreachable_falls_back_to_memory_and_counts_it() -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_retry_seconds=60)
    cache = open_cache(settings)
    assert isinstance(cache, RedisCache)
    before = CACHE_FALLBACKS._value.get()
    try:
        key = await cache.key("events", "q")
        await cache.set(key, b"body")
        assert await cache.get(key) == b"body"
        assert cache.outage.skipping
        assert CACHE_FALLBACKS._value.get() > before
    finally:
        await cache.close()


@pytest.mark.redis
@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs JUNCTION_TEST_REDIS_URL")
async def test_redis_cache_is_shared_bounded_and_invalidated_across_instances() -> None:
    settings = Settings(redis_url=TEST_REDIS_URL, cache_max_entries=3)
    first, second = open_cache(settings), open_cache(settings)
    try:
        key = await first.key("events", "q")
        assert key.startswith("junction:cache:")
        await first.set(key, b"body")
        assert await second.get(key) == b"body"
        for n in range(5):
            await first.set(await first.key("events", f"k{n}"), b"x")
        assert await second.get(key) is None  # evicted: only the 3 most recent remain
        await second.invalidate("events")
        assert await first.key("events", "q") != key
    finally:
        await first.close()
        await second.close()


@pytest.mark.redis
@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs JUNCTION_TEST_REDIS_URL")
async def test_redis_cache_goes_back_to_redis_once_it_answers() -> None:
    assert TEST_REDIS_URL is not None
    settings = Settings(redis_url=TEST_REDIS_URL, redis_retry_seconds=0.05)
    cache = open_cache(settings)
    assert isinstance(cache, RedisCache)
    healthy = cache.redis
    cache.redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    try:
        assert not (await cache.key("events", "q")).startswith("junction:cache:")
        await cache.invalidate("events")  # missed by Redis: replayed when it is back
        await cache.redis.aclose()
        cache.redis = healthy
        await asyncio.sleep(0.1)
        assert await cache.key("events", "q") == "junction:cache:events:v1:q"
    finally:
        await cache.close()
