"""Redis clients whose pool waits for a free connection instead of failing, and the
window in which a caller with a memory fallback leaves a failed Redis alone.

redis-py's default pool raises "Too many connections" the moment more than its limit of
commands are in flight at once: under a burst of concurrent requests that turned rate
limits into per-process memory counters and chat numbering into database look-ups (the
fallbacks meant for a Redis outage). A ``BlockingConnectionPool`` keeps the same limit on
connections but queues the excess commands for up to ``redis_pool_timeout_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import BlockingConnectionPool, Redis

from junction.settings import Settings

log = structlog.get_logger(__name__)


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


class RedisOutage:
    """When a caller that can do without Redis (the cache, the rate limits) skips it.

    After a failure, ``skipping`` is true for ``retry_seconds``: an outage then costs one
    failed call per window, not one per request. That matters most when Redis accepts
    connections but never answers, where every call waits for the socket's timeout
    (seconds). The outage is logged once, when it starts, and again when Redis answers.
    """

    def __init__(
        self, user: str, retry_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.user = user
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._retry_at = 0.0
        self._down = False

    @property
    def skipping(self) -> bool:
        return self._clock() < self._retry_at

    def failed(self, operation: str, exc: Exception) -> None:
        if not self._down:
            log.warning(
                "redis unreachable, using memory",
                user=self.user,
                operation=operation,
                error=str(exc),
                retry_seconds=self.retry_seconds,
            )
        self._down = True
        self._retry_at = self._clock() + self.retry_seconds

    def answered(self) -> None:
        if self._down:
            self._down = False
            log.info("redis reachable again", user=self.user)
