"""Live channels: Action Cable on ``/cable``, server-sent events on ``/api/v1/stream``.

``install_realtime(app)`` adds the routes and the channel registry (domains then call
``register_channel``); ``running_realtime(app)``, entered by the lifespan, starts the
broker (``app.state.broker``), the connection hub and its pings, and tells every client
``disconnect`` when the process stops. Publishers use ``app.state.broker.publish`` or,
for a broadcast caused by a database change, ``publish_after_commit``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from junction.platform.realtime.broker import (
    Broadcast,
    Broker,
    create_broker,
    publish_after_commit,
)
from junction.platform.realtime.cable import CableContext, cable_endpoint
from junction.platform.realtime.channels import (
    JOBS_STREAM,
    Channel,
    SubscriptionRejected,
    SubscriptionRequest,
    platform_channels,
    register_channel,
)
from junction.platform.realtime.connections import Hub, notify_clients_before_exit
from junction.platform.realtime.sse import router as sse_router
from junction.settings import Settings

__all__ = [
    "JOBS_STREAM",
    "UVICORN_WEBSOCKET_OPTIONS",
    "Broadcast",
    "Broker",
    "Channel",
    "LiveBroker",
    "SubscriptionRejected",
    "SubscriptionRequest",
    "current_broker",
    "install_realtime",
    "publish_after_commit",
    "register_channel",
    "running_realtime",
]


UVICORN_WEBSOCKET_OPTIONS: dict[str, Any] = {
    # uvicorn's WebSocket protocol, plus writing one broadcast's encoded frame to each
    # client's socket directly (prepared_frames).
    "ws": "junction.platform.realtime.prepared_frames:PreparedFramesProtocol",
    # Browsers offer permessage-deflate on every WebSocket; accepting it costs a zlib
    # stream per connection (memory) and a compression per client per broadcast (CPU),
    # for live-channel frames of a few hundred bytes.
    "ws_per_message_deflate": False,
    # Action Cable's own ping (every 3 s, connections.Hub) already keeps connections
    # alive; uvicorn's protocol-level ping would add a timer per connection and a ping
    # and pong per client every 20 s on top.
    "ws_ping_interval": None,
}
"""How ``junction serve`` runs uvicorn's WebSockets (and the tests' servers too)."""


async def current_broker(request: Request) -> Broker | None:
    """The live channels' broker; None in an app whose lifespan has not started it."""
    broker: Broker | None = getattr(request.app.state, "broker", None)
    return broker


LiveBroker = Annotated[Broker | None, Depends(current_broker)]
"""A route's dependency on the process's broker, for publishing after a commit."""


def install_realtime(app: FastAPI) -> None:
    app.state.channels = platform_channels()
    # A plain Starlette route: FastAPI's adds dependency solving and an exit stack, about
    # 5 KiB per connection that /cable, which has no dependencies, does not use.
    app.router.add_websocket_route("/cable", cable_endpoint)
    app.include_router(sse_router)


@asynccontextmanager
async def running_realtime(app: FastAPI) -> AsyncIterator[Broker]:
    """The broker and the hub for the app's lifetime; ``app.state.redis`` must be set."""
    settings: Settings = app.state.settings
    broker = create_broker(
        app.state.redis,
        replay_size=settings.realtime_replay_buffer_size,
        replay_ttl_seconds=settings.realtime_replay_ttl_seconds,
    )
    hub = Hub(settings.realtime_max_connections, settings.realtime_ping_interval_seconds)
    app.state.broker = broker
    app.state.cable = CableContext(
        broker=broker,
        hub=hub,
        channels=app.state.channels,
        database=app.state.database,
        send_queue_size=settings.realtime_send_queue_size,
    )
    pinging = asyncio.create_task(hub.ping_forever())
    notify_clients_before_exit(hub)
    try:
        yield broker
    finally:
        await hub.close_all()
        pinging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinging
        await broker.close()
