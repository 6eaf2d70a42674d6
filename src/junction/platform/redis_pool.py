"""Redis clients whose pool waits for a free connection instead of failing.

redis-py's default pool raises "Too many connections" the moment more than its limit of
commands are in flight at once: under a burst of concurrent requests that turned rate
limits into per-process memory counters and chat numbering into database look-ups (the
fallbacks meant for a Redis outage). A ``BlockingConnectionPool`` keeps the same limit on
connections but queues the excess commands for up to ``redis_pool_timeout_seconds``.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from junction.settings import Settings


def open_redis(
    settings: Settings, pool_timeout: float | None = None, **connection_options: Any
) -> Redis | None:
    """A client on ``settings.redis_url``, or None when no Redis is configured.

    ``pool_timeout`` overrides ``redis_pool_timeout_seconds`` for a client that has a
    faster way out than waiting (the cache answers from memory).
    """
    if settings.redis_url is None:
        return None
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=settings.redis_max_connections,
        timeout=pool_timeout or settings.redis_pool_timeout_seconds,
        **connection_options,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
