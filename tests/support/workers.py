"""A job worker in the test's own event loop, polling fast, for tests that need jobs run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from junction.platform.db import Database
from junction.platform.jobs.worker import Worker, parse_queues
from junction.platform.realtime import Broker
from junction.settings import Settings


@asynccontextmanager
async def worker_running(
    database: Database,
    settings: Settings,
    queues: Sequence[str] = ("sync:2",),
    *,
    app: FastAPI | None = None,
    broker: Broker | None = None,
) -> AsyncIterator[None]:
    """Run jobs of ``queues`` (``name:concurrency``) until the block ends; with ``app``, on
    its broker, cache and Redis, as the embedded worker would."""
    state = app.state if app is not None else None
    worker = Worker(
        database,
        settings.model_copy(update={"job_poll_seconds": 0.05}),
        queues=parse_queues(list(queues), 1),
        broker=broker or (state.broker if state else None),
        cache=state.cache if state else None,
        redis=state.redis if state else None,
    )
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
