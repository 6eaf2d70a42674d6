"""The overview's figures: request and error rates, queues, jobs finished per minute and
hour, the health of the database, Redis and storage, and each integration's freshness.

Request rates are this web process's (its Prometheus counters, sampled between two
refreshes of the page); every other figure is read from the shared database, so it is the
whole deployment's.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI

from junction.console import repository
from junction.console.repository import IntegrationFigures, QueueFigures
from junction.platform.db import utcnow
from junction.platform.jobs import repository as jobs_repository
from junction.platform.metrics import HTTP_REQUESTS

CHECK_TIMEOUT_SECONDS = 2.0
STORAGE_PROBE_KEY = "uploads/1970/01/01/" + "0" * 32
"""A key of the generated shape that no upload has: asking whether it exists exercises
the storage without writing to it."""


@dataclass(frozen=True)
class RequestSample:
    at: float
    requests: float
    errors: float

    @classmethod
    def now(cls) -> RequestSample:
        requests = errors = 0.0
        for metric in HTTP_REQUESTS.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                requests += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    errors += sample.value
        return cls(time.monotonic(), requests, errors)

    def rates_since(self, earlier: RequestSample | None) -> tuple[float, float] | None:
        if earlier is None or self.at <= earlier.at:
            return None
        seconds = self.at - earlier.at
        return (self.requests - earlier.requests) / seconds, (
            self.errors - earlier.errors
        ) / seconds


@dataclass(frozen=True)
class Bar:
    label: str
    succeeded: int
    dead: int


@dataclass
class Overview:
    queues: list[QueueFigures]
    last_hour: list[Bar]
    last_day: list[Bar]
    health: dict[str, str]
    integrations: list[IntegrationFigures]
    request_rates: tuple[float, float] | None = None
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def chart_peak(self) -> int:
        return max((bar.succeeded + bar.dead for bar in self.last_day), default=0) or 1

    @property
    def hour_peak(self) -> int:
        return max((bar.succeeded + bar.dead for bar in self.last_hour), default=0) or 1


def _bars(minutes: list[Any], start: datetime, step: timedelta, count: int) -> list[Bar]:
    succeeded: dict[int, int] = defaultdict(int)
    dead: dict[int, int] = defaultdict(int)
    for row in minutes:
        slot = int((row.minute - start) / step)
        if 0 <= slot < count:
            succeeded[slot] += row.succeeded
            dead[slot] += row.dead
    return [
        Bar((start + step * slot).strftime("%H:%M"), succeeded[slot], dead[slot])
        for slot in range(count)
    ]


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # any failure of a dependency is what the page shows
        return f"unavailable ({type(exc).__name__})"
    return "ok"


async def health(app: FastAPI) -> dict[str, str]:
    state = app.state
    checks = {
        ("database (SQLite)" if state.database.is_sqlite else "database (PostgreSQL)"): _check(
            state.database.ping()
        ),
        "storage": _check(state.storage.exists(STORAGE_PROBE_KEY)),
    }
    if state.redis is not None:
        checks["redis"] = _check(state.redis.ping())
    results = await asyncio.gather(*checks.values())
    return dict(zip(checks, results, strict=True))


async def gather(app: FastAPI, known_queues: list[str]) -> Overview:
    now = utcnow()
    this_minute = now.replace(second=0, microsecond=0)
    hour_start = this_minute - timedelta(minutes=59)
    day_start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    async with app.state.database.reading() as session:
        queues = await repository.queue_figures(session, known_queues)
        minutes = await jobs_repository.minutes_since(session, day_start)
        integrations = await repository.integration_figures(session, timedelta(days=1))
    return Overview(
        queues=queues,
        last_hour=_bars(minutes, hour_start, timedelta(minutes=1), 60),
        last_day=_bars(minutes, day_start, timedelta(hours=1), 24),
        health=await health(app),
        integrations=integrations,
        totals={
            "ready": sum(q.ready for q in queues),
            "running": sum(q.running for q in queues),
            "succeeded_day": sum(row.succeeded for row in minutes),
            "dead_day": sum(row.dead for row in minutes),
        },
    )
