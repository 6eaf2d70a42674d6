"""The version of an integration's data, for cache keys that must change with every sync."""

from __future__ import annotations

import asyncio
import math

import structlog

from junction.platform.db import Database
from junction.platform.integrations import repository

log = structlog.get_logger(__name__)


class DataVersionWatcher:
    """An integration's data version (its newest run that wrote rows), kept current by a
    timer that reads it every ``interval`` seconds.

    Cache keys carry it, so a sync committed by any process (worker, CLI) invalidates the
    cached answers of every web process within about ``interval``, whatever the traffic: the
    timer (``refresh_forever``, run by the app's lifespan) reads it whether or not requests
    arrive. Reads never wait on the timer; waiting on a check made in line stalled every
    request arriving during the query, a p99 of several hundred milliseconds under load. A
    version older than two intervals (no timer running, or the timer stuck on a slow
    database) is read in line, so the bound holds without the timer too; an interval of 0
    reads on every call.
    """

    def __init__(self, database: Database, integration: str, interval: float) -> None:
        self.database = database
        self.integration = integration
        self.interval = interval
        self._version: int | None = None
        self._checked_at = -math.inf

    async def current(self) -> int:
        if self._version is None or self._age() >= 2 * self.interval:
            await self._read()
        assert self._version is not None
        return self._version

    async def refresh_forever(self) -> None:
        """Read the version every interval, once a request has asked for it."""
        while True:
            await asyncio.sleep(max(self.interval, 0.05))
            if self._version is None or self._age() < self.interval:
                continue
            try:
                await self._read()
            except Exception:
                log.warning(
                    "could not read the data version", integration=self.integration, exc_info=True
                )

    def _age(self) -> float:
        return asyncio.get_running_loop().time() - self._checked_at

    async def _read(self) -> None:
        async with self.database.reading() as session:
            self._version = await repository.newest_writing_run_id(session, self.integration)
        self._checked_at = asyncio.get_running_loop().time()
