"""Running the worker and the scheduler: embedded in the web process or on their own.

``JobRuntime`` is what ``junction serve`` (embedded mode), ``junction worker`` and
``junction scheduler`` run. SIGTERM (or SIGINT) stops claiming and firing; running jobs
get ``shutdown_grace_seconds`` to finish, and the rest are released to other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
from redis.asyncio import Redis

from junction.platform.cache import Cache, open_cache
from junction.platform.db import Database
from junction.platform.jobs.maintenance import schedule_maintenance
from junction.platform.jobs.registry import load_job_modules, registry
from junction.platform.jobs.scheduler import Scheduler
from junction.platform.jobs.worker import QueueSlots, Worker
from junction.platform.logging import configure_logging
from junction.platform.migrations import wait_for_schema
from junction.platform.realtime.broker import Broker, create_broker
from junction.platform.redis_pool import open_redis
from junction.settings import Settings

log = structlog.get_logger(__name__)


class JobRuntime:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        worker: bool = True,
        scheduler: bool = True,
        queues: list[QueueSlots] | None = None,
        broker: Broker | None = None,
        cache: Cache | None = None,
        redis: Redis | None = None,
    ) -> None:
        load_job_modules(settings.job_modules)
        if scheduler:
            schedule_maintenance(registry, settings)
        self.worker = (
            Worker(database, settings, queues=queues, broker=broker, cache=cache, redis=redis)
            if worker
            else None
        )
        self.scheduler = Scheduler(database, settings) if scheduler else None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for part in (self.worker, self.scheduler):
            if part is not None:
                self._tasks.append(asyncio.create_task(part.run()))

    def stop(self) -> None:
        for part in (self.worker, self.scheduler):
            if part is not None:
                part.stop()

    async def wait(self) -> None:
        """Until every part has stopped; a part that crashed stops the others."""
        if not self._tasks:
            return
        await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        self.stop()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("job runtime part failed", error=repr(result))

    async def shutdown(self) -> None:
        self.stop()
        await self.wait()


async def run_until_signalled(
    settings: Settings, *, worker: bool, scheduler: bool, queues: list[QueueSlots] | None = None
) -> None:
    """The body of ``junction worker`` / ``junction scheduler``."""
    configure_logging(settings)
    database = Database(settings)
    # Without Redis a separate process cannot reach any web process's subscribers.
    redis = open_redis(settings)
    broker = (
        create_broker(redis, replay_size=settings.realtime_replay_buffer_size) if redis else None
    )
    cache = open_cache(settings)
    try:
        await database.wait_until_reachable(settings.database_startup_attempts)
        await wait_for_schema(settings, database)
        runtime = JobRuntime(
            database,
            settings,
            worker=worker,
            scheduler=scheduler,
            queues=queues,
            broker=broker,
            cache=cache,
            redis=redis,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runtime.stop)
        runtime.start()
        await runtime.wait()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    finally:
        await cache.close()
        if broker is not None:
            await broker.close()
        if redis is not None:
            await redis.aclose()
        await database.dispose()
