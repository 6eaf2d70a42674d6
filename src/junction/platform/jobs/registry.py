"""Job handlers and schedules, registered by name.

Domains register with the decorators of the process-wide ``registry``::

    @registry.job("chat.update_counts", queue="default", max_attempts=5)
    async def update_counts(job: JobContext) -> dict[str, int]: ...

    registry.schedule("events.pull", "events.pull_feed", cron="*/5 * * * *")

Callers enqueue by name (``enqueue(session, "chat.update_counts", {...})``) and never
import a handler's module. The modules named in ``JUNCTION_JOB_MODULES`` are imported at
start by the app factory, ``junction worker`` and ``junction scheduler``.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from croniter import croniter

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from junction.platform.cache import Cache
    from junction.platform.db import Database
    from junction.platform.realtime.broker import Broker
    from junction.settings import Settings

DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)``, capped, then +/- jitter.

    The defaults wait about 5 s, 10 s, 20 s ... up to an hour between attempts; the jitter
    spreads retries of jobs that failed together so they do not return together.
    """

    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    jitter: float = 0.25

    def delay(self, attempt: int) -> float:
        raw = min(self.max_seconds, self.base_seconds * 2.0 ** max(attempt - 1, 0))
        return min(self.max_seconds, raw * random.uniform(1 - self.jitter, 1 + self.jitter))


@dataclass(frozen=True)
class JobContext:
    """What a handler receives: the job's identity, its payload and the process's parts."""

    id: int
    name: str
    payload: Any
    attempt: int
    max_attempts: int
    database: Database
    settings: Settings
    broker: Broker | None = None
    """The process's live-channel broker: the web process's when the worker is embedded,
    a Redis one in a separate worker when Redis is configured, else None."""
    cache: Cache | None = None
    """The process's response cache (the web process's when the worker is embedded), for
    handlers whose writes must invalidate cached responses."""
    redis: Redis | None = None
    """The process's Redis client when Redis is configured."""


Handler = Callable[[JobContext], Awaitable[Any]]


@dataclass(frozen=True)
class JobDefinition:
    name: str
    handler: Handler
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    backoff: Backoff = field(default_factory=Backoff)
    retention: timedelta | None = None
    """How long its succeeded and discarded jobs are kept; None: JUNCTION_JOB_RETENTION_DAYS."""


@dataclass(frozen=True)
class ScheduleDefinition:
    """When a job is enqueued by the scheduler. ``spec`` is stored: a change reschedules."""

    name: str
    job_name: str
    spec: str
    payload: Any = None
    unique_key: str | None = None
    """A tick that finds a job with this key queued or running merges into it."""
    run_on_first_start: bool = False
    """Due at once while it has never fired on this database, instead of at its first
    tick: a new deployment syncs now rather than hours later."""

    def next_run(self, now: datetime) -> datetime | None:
        """The first tick after ``now``: missed ticks are never replayed one by one."""
        kind, _, value = self.spec.partition(":")
        if kind == "cron":
            return croniter(value, now).get_next(datetime)
        if kind == "every":
            return now + timedelta(seconds=float(value))
        return None

    def first_run(self, now: datetime) -> datetime:
        kind, _, value = self.spec.partition(":")
        if kind == "once":
            return now + timedelta(seconds=float(value))
        next_run = self.next_run(now)
        assert next_run is not None
        return next_run


def schedule_spec(cron: str | None, every: float | None, once_after: float | None) -> str:
    given = [v for v in (cron, every, once_after) if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of cron=, every= or once_after=")
    if cron is not None:
        if not croniter.is_valid(cron):
            raise ValueError(f"invalid cron expression: {cron!r}")
        return f"cron:{cron}"
    if every is not None:
        if every <= 0:
            raise ValueError("every= must be positive")
        return f"every:{every:g}"
    assert once_after is not None
    if once_after < 0:
        raise ValueError("once_after= must not be negative")
    return f"once:{once_after:g}"


class UnknownJob(LookupError):
    pass


class JobRegistry:
    def __init__(self) -> None:
        self.jobs: dict[str, JobDefinition] = {}
        self.schedules: dict[str, ScheduleDefinition] = {}

    def job(
        self,
        name: str,
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        backoff: Backoff | None = None,
        retention: timedelta | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated coroutine function as the handler of jobs named ``name``."""
        if max_attempts < 1 or timeout_seconds <= 0:
            raise ValueError("max_attempts must be >= 1 and timeout_seconds > 0")
        if retention is not None and retention <= timedelta(0):
            raise ValueError("retention must be positive")

        def register(handler: Handler) -> Handler:
            existing = self.jobs.get(name)
            if existing is not None and existing.handler is not handler:
                raise ValueError(f"job {name!r} is already registered")
            self.jobs[name] = JobDefinition(
                name,
                handler,
                queue,
                priority,
                max_attempts,
                timeout_seconds,
                backoff or Backoff(),
                retention,
            )
            return handler

        return register

    def schedule(
        self,
        name: str,
        job_name: str,
        *,
        cron: str | None = None,
        every: float | None = None,
        once_after: float | None = None,
        payload: Any = None,
        unique_key: str | None = None,
        run_on_first_start: bool = False,
    ) -> ScheduleDefinition:
        """Enqueue ``job_name`` on a cron expression (UTC), every N seconds, or once N
        seconds after the scheduler starts; ``run_on_first_start`` also fires a cron or
        interval schedule as soon as a scheduler starts, until it has fired once."""
        if run_on_first_start and once_after is not None:
            raise ValueError("run_on_first_start= is for cron= and every= schedules")
        definition = ScheduleDefinition(
            name,
            job_name,
            schedule_spec(cron, every, once_after),
            payload,
            unique_key,
            run_on_first_start,
        )
        self.schedules[name] = definition
        return definition

    def get(self, name: str) -> JobDefinition:
        try:
            return self.jobs[name]
        except KeyError:
            raise UnknownJob(f"no job handler is registered under {name!r}") from None


registry = JobRegistry()


def load_job_modules(modules: Iterable[str]) -> None:
    """Import the modules that register handlers and schedules (each once)."""
    for module in modules:
        importlib.import_module(module)
