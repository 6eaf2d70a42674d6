"""Spacing requests to an upstream that allows so many per second, across every process.

Airtable allows 5 requests per second per base and answers more with 429 and a penalty;
other APIs have the same shape. Each request first takes a slot: slots are ``1 /
per_second`` apart, reserved atomically in Redis when there is one (so every process
shares the budget), and a 429 pushes the next slot past the penalty for all of them.
Without Redis the slots are this process's own. Written by hand: the limiters on PyPI
either refuse (a token bucket answering "no") or wait per process, and a sync must wait its
turn in a budget shared by every worker.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

_RESERVE_SLOT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, next_free)
local spacing = tonumber(ARGV[1])
local keep_ms = math.ceil((slot + spacing - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(slot + spacing), 'PX', keep_ms)
return tostring(slot - now)
"""

_PENALIZE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > next_free then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""

# The next free slot per upstream in this process (monotonic clock), for when there is no
# Redis: shared by every sync of the process.
_next_local_slot: dict[str, float] = {}
# When this process last sent to each upstream: a slot only says when a request may go, and
# a busy event loop can send one late, next to an on-time successor. The window is checked
# again against real send times just before each send.
_recent_sends: dict[str, deque[float]] = {}
SEND_WINDOW_SECONDS = 1.05


class UpstreamThrottle:
    """Spaces requests to one budget of an upstream (Airtable's are per base), at most
    ``burst`` in a window; shared through Redis when there is one."""

    def __init__(
        self, upstream: str, budget: str, per_second: float, redis: Redis | None, burst: int = 5
    ) -> None:
        self.name = f"{upstream}:{budget}"
        self.spacing = 1.0 / per_second
        self.burst = burst
        self.key = f"junction:{upstream}:next-slot:{budget}"
        self.redis = redis

    async def acquire(self) -> None:
        await asyncio.sleep(await self._reserve())
        sent = _recent_sends.setdefault(self.name, deque(maxlen=self.burst))
        if len(sent) == self.burst:
            wait = sent[0] + SEND_WINDOW_SECONDS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        sent.append(time.monotonic())

    async def penalize(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        _next_local_slot[self.name] = max(_next_local_slot.get(self.name, 0.0), until)
        if self.redis is not None:
            try:
                await self.redis.eval(_PENALIZE, 1, self.key, seconds)
            except RedisError as exc:
                log.warning("throttle: redis unreachable", upstream=self.name, error=str(exc))

    async def _reserve(self) -> float:
        if self.redis is not None:
            try:
                return float(await self.redis.eval(_RESERVE_SLOT, 1, self.key, self.spacing))
            except RedisError as exc:
                log.warning(
                    "throttle: redis unreachable, spacing locally",
                    upstream=self.name,
                    error=str(exc),
                )
        now = time.monotonic()
        slot = max(now, _next_local_slot.get(self.name, 0.0))
        _next_local_slot[self.name] = slot + self.spacing
        return slot - now
