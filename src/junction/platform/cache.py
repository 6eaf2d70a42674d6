"""A response cache shared by the domains: in-process LRU with TTL, or Redis.

``open_cache(settings)`` gives Redis when ``JUNCTION_REDIS_URL`` is set and the in-process
cache otherwise. The Redis cache never fails a request because Redis did: on an error it
logs, counts the fallback and answers from its in-process cache for
``redis_retry_seconds`` before it tries Redis again (``RedisOutage``).

Invalidation is by namespace version: keys are built with ``await cache.key(namespace,
suffix)``, which embeds the namespace's current version, and ``invalidate(namespace)``
bumps that version (an ``INCR`` in Redis, so every process sees it); old entries are never
read again and age out by TTL and LRU. This costs one counter read per lookup instead of a
scan over keys.

The LRU with TTL is written here rather than taken from cachetools because it must hold a
per-entry deadline and be shared by coroutines without a lock; it is a dozen lines over
``OrderedDict``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from junction.platform.redis_pool import RedisOutage, open_redis
from junction.settings import Settings

log = structlog.get_logger(__name__)

CACHE_LOOKUPS = Counter(
    "junction_cache_lookups_total",
    "Cache lookups by namespace and result.",
    ["namespace", "result"],
)
CACHE_FALLBACKS = Counter(
    "junction_cache_redis_fallbacks_total",
    "Cache operations answered in-process because Redis failed.",
)


class Cache(Protocol):
    async def key(self, namespace: str, suffix: str) -> str: ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None: ...

    async def invalidate(self, namespace: str) -> None: ...

    async def close(self) -> None: ...


def record_lookup(namespace: str, hit: bool) -> None:
    CACHE_LOOKUPS.labels(namespace, "hit" if hit else "miss").inc()


async def get_or_build(
    cache: Cache, namespace: str, suffix: str, build: Callable[[], Awaitable[bytes]]
) -> tuple[bytes, bool]:
    """The cached value of ``suffix`` in ``namespace``, built and stored on a miss; the
    lookup is counted. Answers the value and whether it was a hit."""
    key = await cache.key(namespace, suffix)
    value = await cache.get(key)
    record_lookup(namespace, value is not None)
    if value is not None:
        return value, True
    value = await build()
    await cache.set(key, value)
    return value, False


class MemoryCache:
    """LRU of at most ``max_entries`` values, each dropped after its TTL."""

    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._versions: dict[str, int] = {}

    async def key(self, namespace: str, suffix: str) -> str:
        return f"{namespace}:v{self._versions.get(namespace, 0)}:{suffix}"

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline, value = entry
        if deadline < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        deadline = time.monotonic() + (ttl_seconds or self.ttl_seconds)
        self._entries[key] = (deadline, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def invalidate(self, namespace: str) -> None:
        self._versions[namespace] = self._versions.get(namespace, 0) + 1

    async def close(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache:
    """Redis with a bounded LRU per cache (a sorted set of access times), memory on failure."""

    LRU_INDEX = "junction:cache:lru"

    def __init__(self, redis: Redis, fallback: MemoryCache, retry_seconds: float) -> None:
        self.redis = redis
        self.fallback = fallback
        self.outage = RedisOutage("cache", retry_seconds)
        self._pending_invalidations: set[str] = set()

    def _failed(self, operation: str, exc: Exception) -> None:
        CACHE_FALLBACKS.inc()
        self.outage.failed(operation, exc)

    async def _available(self) -> bool:
        """False while in the outage window; replays invalidations missed while down."""
        if self.outage.skipping:
            return False
        if self._pending_invalidations:
            try:
                for namespace in sorted(self._pending_invalidations):
                    await self.redis.incr(_version_key(namespace))
            except RedisError as exc:
                self._failed("invalidate", exc)
                return False
            self._pending_invalidations.clear()
            self.outage.answered()
        return True

    async def key(self, namespace: str, suffix: str) -> str:
        if await self._available():
            try:
                version = await self.redis.get(_version_key(namespace))
            except RedisError as exc:
                self._failed("key", exc)
            else:
                self.outage.answered()
                return f"junction:cache:{namespace}:v{int(version or 0)}:{suffix}"
        return await self.fallback.key(namespace, suffix)

    async def get(self, key: str) -> bytes | None:
        if key.startswith("junction:cache:") and await self._available():
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.get(key)
                    pipe.zadd(self.LRU_INDEX, {key: time.time()}, xx=True)
                    value, _ = await pipe.execute()
            except RedisError as exc:
                self._failed("get", exc)
                return None
            return value if isinstance(value, bytes) else None
        return await self.fallback.get(key)

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        if not key.startswith("junction:cache:") or not await self._available():
            await self.fallback.set(key, value, ttl_seconds)
            return
        ttl_ms = int((ttl_seconds or self.fallback.ttl_seconds) * 1000)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(key, value, px=ttl_ms)
                pipe.zadd(self.LRU_INDEX, {key: time.time()})
                pipe.zrange(self.LRU_INDEX, 0, -(self.fallback.max_entries + 1))
                _, _, evicted = await pipe.execute()
                if evicted:
                    pipe.delete(*evicted)
                    pipe.zrem(self.LRU_INDEX, *evicted)
                    await pipe.execute()
        except RedisError as exc:
            self._failed("set", exc)

    async def invalidate(self, namespace: str) -> None:
        await self.fallback.invalidate(namespace)
        if not await self._available():
            self._pending_invalidations.add(namespace)
            return
        try:
            await self.redis.incr(_version_key(namespace))
        except RedisError as exc:
            self._pending_invalidations.add(namespace)
            self._failed("invalidate", exc)

    async def close(self) -> None:
        await self.fallback.close()
        await self.redis.aclose()


def _version_key(namespace: str) -> str:
    return f"junction:cache-version:{namespace}"


def open_cache(settings: Settings) -> Cache:
    memory = MemoryCache(settings.cache_max_entries, settings.cache_ttl_seconds)
    redis = open_redis(settings, pool_timeout=0.5, socket_connect_timeout=0.5, socket_timeout=0.5)
    if redis is None:
        return memory
    return RedisCache(redis, memory, settings.redis_retry_seconds)
