"""Rate limits per route group, with the ``limits`` library.

Counters live in Redis when it is configured, so every web process shares them, and in
memory otherwise. When Redis stops answering, limits are enforced per process in memory
(logged and counted) rather than letting every request through or failing them all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import structlog
from fastapi import Request, Response
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter

from junction.platform.errors import TooManyRequests

log = structlog.get_logger(__name__)

RATE_LIMIT_FALLBACKS = Counter(
    "junction_rate_limit_storage_fallbacks_total",
    "Rate-limit checks answered from memory because Redis failed.",
)
RATE_LIMITED = Counter(
    "junction_rate_limited_total", "Requests refused with 429, by route group.", ["group"]
)


class RateLimiter:
    def __init__(self, limits_by_group: dict[str, str], redis_url: str | None) -> None:
        self.items: dict[str, RateLimitItem] = {
            group: parse(spec) for group, spec in limits_by_group.items()
        }
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        if redis_url:
            storage: Storage = RedisStorage(
                f"async+{redis_url}", implementation="redispy", wrap_exceptions=True
            )
            self.shared = MovingWindowRateLimiter(storage)

    def item_for(self, group: str) -> RateLimitItem:
        return self.items.get(group) or self.items["default"]

    async def hit(self, group: str, identity: str) -> tuple[bool, RateLimitItem, int, float]:
        """Count one request; answers (allowed, limit, remaining, reset epoch seconds)."""
        item = self.item_for(group)
        limiter = self.shared or self.memory
        try:
            allowed = await limiter.hit(item, group, identity)
            stats = await limiter.get_window_stats(item, group, identity)
        except StorageError as exc:
            RATE_LIMIT_FALLBACKS.inc()
            log.warning("rate-limit storage failed, using memory", error=str(exc))
            allowed = await self.memory.hit(item, group, identity)
            stats = await self.memory.get_window_stats(item, group, identity)
        return allowed, item, stats.remaining, stats.reset_time


def client_identity(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return f"key:{principal.key_id}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


def rate_limit(
    group: str, identity: Callable[[Request], str] = client_identity
) -> Callable[[Request, Response], Awaitable[None]]:
    """A dependency enforcing the limit of ``group``; sets the X-RateLimit-* headers."""

    async def enforce(request: Request, response: Response) -> None:
        limiter: RateLimiter = request.app.state.rate_limiter
        allowed, item, remaining, reset_at = await limiter.hit(group, identity(request))
        reset_in = max(0, math.ceil(reset_at - time.time()))
        headers = {
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": str(reset_in),
        }
        if not allowed:
            RATE_LIMITED.labels(group).inc()
            raise TooManyRequests(
                f"Rate limit of {item} exceeded; retry in {max(reset_in, 1)} seconds",
                headers={**headers, "Retry-After": str(max(reset_in, 1))},
            )
        response.headers.update(headers)

    return enforce
