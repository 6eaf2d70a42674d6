"""``/cable``: the Action Cable protocol (``actioncable-v1-json``), so the stock
``@rails/actioncable`` client works unchanged.

Server to client: ``{"type":"welcome"}``, ``{"type":"ping","message":<unix time>}`` every
3 s, ``{"identifier":...,"type":"confirm_subscription"|"reject_subscription"}``,
``{"identifier":...,"message":...}`` for a broadcast, and
``{"type":"disconnect","reason":...,"reconnect":...}``. Client to server:
``{"command":"subscribe"|"unsubscribe"|"message","identifier":...,"data":...}``. The
identifier is the client's own JSON text, echoed back byte for byte.

As in Rails, a repeated ``subscribe`` for an identifier already subscribed is ignored (the
stock client re-sends it until it sees the confirmation), and an invalid API key refuses
the whole connection with ``disconnect`` reason ``unauthorized`` and no reconnect.

Written on Starlette's WebSocket: no maintained Python library speaks Action Cable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from junction.platform.auth import Principal
from junction.platform.db import Database
from junction.platform.realtime import metrics
from junction.platform.realtime.broker import Broadcast, Broker
from junction.platform.realtime.channels import (
    ChannelRegistry,
    InvalidApiKey,
    ResolvedSubscription,
    SubscriptionRejected,
    authenticate,
)
from junction.platform.realtime.connections import (
    SLOW_CLIENT,
    TOO_MANY_CONNECTIONS,
    UNAUTHORIZED,
    Hub,
    compact_json,
    disconnect_frame,
)

log = structlog.get_logger(__name__)

PROTOCOL = "actioncable-v1-json"
WELCOME = compact_json({"type": "welcome"})
GOODBYE_TIMEOUT_SECONDS = 1.0
_cable_sent = metrics.MESSAGES_SENT.labels("cable")


@dataclass(frozen=True)
class CableContext:
    """What every connection of one app shares."""

    broker: Broker
    hub: Hub
    channels: ChannelRegistry
    database: Database
    send_queue_size: int


async def cable_endpoint(websocket: WebSocket) -> None:
    context: CableContext = websocket.app.state.cable
    offered = websocket.scope.get("subprotocols", [])
    subprotocol = PROTOCOL if PROTOCOL in offered else None
    if not context.hub.has_room():
        await _refuse(websocket, subprotocol, TOO_MANY_CONNECTIONS, reconnect=True)
        return
    try:
        principal = await authenticate(websocket, context.database)
    except InvalidApiKey:
        await _refuse(websocket, subprotocol, UNAUTHORIZED, reconnect=False)
        return
    await websocket.accept(subprotocol)
    connection = CableConnection(websocket, context, principal)
    context.hub.join(connection)
    try:
        await connection.run()
    finally:
        context.hub.leave(connection)


async def _refuse(
    websocket: WebSocket, subprotocol: str | None, reason: str, *, reconnect: bool
) -> None:
    metrics.CLIENTS_DROPPED.labels(reason).inc()
    await websocket.accept(subprotocol)
    with contextlib.suppress(Exception):
        await websocket.send_text(disconnect_frame(reason, reconnect=reconnect))
        await websocket.close()


class CableSubscription:
    """One identifier of one connection; builds its broadcast frames without re-encoding."""

    def __init__(self, connection: CableConnection, resolved: ResolvedSubscription) -> None:
        self.connection = connection
        self.resolved = resolved
        self._prefix = '{"identifier":' + json.dumps(resolved.identifier) + ',"message":'

    def deliver(self, broadcast: Broadcast) -> None:
        self.connection.offer(self._prefix + broadcast.payload + "}", counted=True)


class CableConnection:
    transport = "cable"

    def __init__(self, websocket: WebSocket, context: CableContext, principal: Principal | None):
        self.websocket = websocket
        self.context = context
        self.principal = principal
        self.subscriptions: dict[str, CableSubscription] = {}
        self._queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue(context.send_queue_size)
        self._goodbye: str | None = None
        self._writer: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self.offer(WELCOME)
        self._writer = asyncio.create_task(self._write())
        reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait({self._writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            self._writer.cancel()
            await asyncio.gather(reader, self._writer, return_exceptions=True)
            await self._unsubscribe_all()

    def offer(self, frame: str, *, counted: bool = False) -> None:
        if self._goodbye is not None:
            return
        try:
            self._queue.put_nowait((frame, counted))
        except asyncio.QueueFull:
            self.drop(SLOW_CLIENT, reconnect=True)

    def ping(self, frame: str) -> None:
        self.offer(frame)

    def drop(self, reason: str, *, reconnect: bool) -> None:
        if self._goodbye is not None:
            return
        metrics.CLIENTS_DROPPED.labels(reason).inc()
        log.info("dropping cable client", reason=reason)
        self._goodbye = disconnect_frame(reason, reconnect=reconnect)
        if self._writer is not None:
            self._writer.cancel()

    async def _write(self) -> None:
        try:
            while True:
                frame, counted = await self._queue.get()
                await self.websocket.send_text(frame)
                if counted:
                    _cable_sent.inc()
        except asyncio.CancelledError:
            if self._goodbye is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._say_goodbye(self._goodbye)
        except Exception:  # the client went away mid-send; the reader sees it too
            return

    async def _say_goodbye(self, frame: str) -> None:
        """Best effort: a client that stopped reading may never take these bytes."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(GOODBYE_TIMEOUT_SECONDS):
                await self.websocket.send_text(frame)
                await self.websocket.close()

    async def _read(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await self._handle(await self.websocket.receive_text())

    async def _handle(self, text: str) -> None:
        try:
            command = json.loads(text)
        except ValueError:
            log.info("cable command is not JSON", command=text[:200])
            return
        identifier = command.get("identifier") if isinstance(command, dict) else None
        if not isinstance(identifier, str):
            log.info("cable command without a string identifier", command=text[:200])
            return
        match command.get("command"):
            case "subscribe":
                await self._subscribe(identifier)
            case "unsubscribe":
                await self._unsubscribe(identifier)
            case "message":
                self._receive(identifier, command.get("data"))
            case other:
                log.info("unknown cable command", command=str(other)[:50])

    async def _subscribe(self, identifier: str) -> None:
        if identifier in self.subscriptions:
            return
        context = self.context
        try:
            resolved = await context.channels.resolve(identifier, self.principal, context.database)
        except SubscriptionRejected as exc:
            log.info("cable subscription rejected", identifier=identifier, reason=str(exc))
            self.offer(_subscription_frame(identifier, "reject_subscription"))
            return
        subscription = CableSubscription(self, resolved)
        self.subscriptions[identifier] = subscription
        metrics.SUBSCRIPTIONS.labels(resolved.channel).inc()
        try:
            for stream in resolved.streams:
                await context.broker.subscribe(stream, subscription.deliver)
        except Exception:
            log.exception("subscribing to the broker failed", identifier=identifier)
            await self._unsubscribe(identifier)
            self.offer(_subscription_frame(identifier, "reject_subscription"))
            return
        self.offer(_subscription_frame(identifier, "confirm_subscription"))

    async def _unsubscribe(self, identifier: str) -> None:
        subscription = self.subscriptions.pop(identifier, None)
        if subscription is None:
            return
        for stream in subscription.resolved.streams:
            await self.context.broker.unsubscribe(stream, subscription.deliver)
        metrics.SUBSCRIPTIONS.labels(subscription.resolved.channel).dec()

    async def _unsubscribe_all(self) -> None:
        for identifier in tuple(self.subscriptions):
            with contextlib.suppress(Exception):
                await self._unsubscribe(identifier)

    def _receive(self, identifier: str, data: object) -> None:
        # No platform channel takes actions from clients yet; Rails, too, only logs an
        # action it cannot perform.
        log.info(
            "cable message ignored",
            identifier=identifier,
            subscribed=identifier in self.subscriptions,
        )


def _subscription_frame(identifier: str, kind: str) -> str:
    return compact_json({"identifier": identifier, "type": kind})
