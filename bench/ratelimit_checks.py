"""Rate-limit checks per second on Redis: Junction's GCRA limiter against ``limits``.

Each check is what a limited request does before its route runs: count the request and
learn the figures for the ``X-RateLimit-*`` headers. The baseline, in the same run on the
same Redis, is the ``limits`` library's moving window as Junction used it before (``hit``,
then ``get_window_stats``). Both run ``--concurrency`` callers at once in one process,
over ``--callers`` identities, with a limit high enough that nothing is refused.

    uv run python bench/ratelimit_checks.py [--checks 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import emit
from junction.platform.ratelimit import RateLimiter

LIMIT = "1000000/minute"

Check = Callable[[str], Awaitable[object]]


async def checks_per_second(check: Check, checks: int, concurrency: int, callers: int) -> float:
    async def caller(index: int) -> None:
        for n in range(index, checks, concurrency):
            await check(f"caller-{n % callers}")

    began = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return checks / (time.perf_counter() - began)


async def main(options: argparse.Namespace) -> None:
    redis = Redis.from_url(options.redis_url)
    await redis.flushdb()
    junction = RateLimiter({"default": LIMIT}, redis)

    storage = RedisStorage(f"async+{options.redis_url}", implementation="redispy")
    moving = MovingWindowRateLimiter(storage)
    item = parse(LIMIT)

    async def moving_window(identity: str) -> object:
        await moving.hit(item, "default", identity)
        return await moving.get_window_stats(item, "default", identity)

    sizes = {
        "checks": options.checks,
        "concurrency": options.concurrency,
        "callers": options.callers,
    }
    ours = await checks_per_second(lambda identity: junction.hit("default", identity), **sizes)
    base = await checks_per_second(moving_window, **sizes)
    params = {**sizes, "baseline": "limits MovingWindowRateLimiter: hit + get_window_stats"}
    emit("ratelimit_checks_per_second", ours, "checks/s", base, params)
    await redis.flushdb()
    await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("JUNCTION_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    )
    asyncio.run(main(parser.parse_args()))
