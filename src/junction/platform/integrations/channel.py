"""``SyncStatusChannel``: every integration's runs, live, for keys with the ``read`` scope.

A run's watchers get its report after each commit. ``SyncStatusPublisher`` sends them
through a job's broker: the web process's own when the worker is embedded, Redis from a
separate worker (a separate worker without Redis has no way to reach the web processes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from junction.platform.auth import Scope
from junction.platform.integrations.runs import RunReport
from junction.platform.realtime.broker import Broker
from junction.platform.realtime.channels import Channel, SubscriptionRequest

log = structlog.get_logger(__name__)

SYNC_STATUS_STREAM = "sync_status"


class SyncStatusChannel(Channel):
    name = "SyncStatusChannel"

    async def streams(self, request: SubscriptionRequest) -> Sequence[str]:
        request.require_scope(Scope.read)
        return [SYNC_STATUS_STREAM]


class SyncStatusPublisher:
    """An observer of runs that publishes each report it is told of; ``aclose`` waits for
    the broadcasts still in flight."""

    def __init__(self, broker: Broker | None) -> None:
        self.broker = broker
        self.pending: set[asyncio.Task[int]] = set()

    def __call__(self, report: RunReport) -> None:
        if self.broker is None:
            return
        message = report.as_message()
        task = asyncio.get_running_loop().create_task(
            self.broker.publish(SYNC_STATUS_STREAM, message)
        )
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def __aenter__(self) -> SyncStatusPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        results = await asyncio.gather(*self.pending, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("sync status broadcast failed", error=str(result))
