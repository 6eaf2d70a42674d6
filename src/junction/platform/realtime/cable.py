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

The hot path is one broadcast reaching thousands of connections. Its frame is built once
per identifier (``BroadcastFrames``, shared by every subscription to that identifier),
encoded as WebSocket bytes once (``TextFrameEncoder``), and each connection whose writer is
idle hands those bytes straight to its socket (``prepared_frames``, which ``junction
serve`` offers). A connection that is still writing, or whose socket buffer is full,
queues the frame in its ``SendQueue``, which its writer task drains through ASGI. Waking
a writer task per client per broadcast instead doubled the server's CPU per broadcast
(10,000 clients: 0.9 s against 0.45 s in ``bench/realtime_fanout.py``). Nothing on that
path logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from dataclasses import dataclass, field

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
from junction.platform.realtime.prepared_frames import TextFrameEncoder, frame_writer

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
    encoder: TextFrameEncoder = field(default_factory=TextFrameEncoder)
    frames: weakref.WeakValueDictionary[str, BroadcastFrames] = field(
        default_factory=weakref.WeakValueDictionary
    )

    def frames_for(self, identifier: str) -> BroadcastFrames:
        """The frame builder of ``identifier``, shared while any subscription holds it."""
        frames = self.frames.get(identifier)
        if frames is None:
            frames = self.frames[identifier] = BroadcastFrames(identifier)
        return frames


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


class BroadcastFrames:
    """Builds the frame of each broadcast for one identifier once, however many subscribe."""

    __slots__ = ("__weakref__", "_last_frame", "_last_id", "_prefix")

    def __init__(self, identifier: str) -> None:
        self._prefix = '{"identifier":' + json.dumps(identifier) + ',"message":'
        self._last_id = -1
        self._last_frame = ""

    def frame(self, broadcast: Broadcast) -> str:
        # Event ids are unique across streams, so the id alone names the broadcast.
        if broadcast.id != self._last_id:
            self._last_frame = self._prefix + broadcast.payload + "}"
            self._last_id = broadcast.id
        return self._last_frame


class SendQueue:
    """The frames waiting for one connection's writer: bounded, with a single reader.

    Written by hand because ``asyncio.Queue`` carries three deques and an ``Event`` (a
    few KiB) for what is, on an idle connection, an empty list, and thousands of
    connections each hold one. The writer takes every queued frame at once, so a burst
    is written without waking it per frame.
    """

    __slots__ = ("_frames", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._frames: list[tuple[str, bool]] = []
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def put(self, frame: str, counted: bool) -> bool:
        """Queue ``frame``; False, queueing nothing, when the queue is full."""
        if len(self._frames) >= self._limit:
            return False
        self._frames.append((frame, counted))
        self.wake()
        return True

    def idle(self) -> bool:
        """True while the writer waits in ``take_all`` and nothing is queued."""
        return self._waiter is not None and not self._frames

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take_all(self) -> list[tuple[str, bool]]:
        """Every queued frame, oldest first; waits until a frame or ``wake`` comes."""
        if not self._frames:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frames, self._frames = self._frames, []
        return frames


class CableSubscription:
    """One identifier of one connection."""

    __slots__ = ("connection", "frames", "resolved")

    def __init__(self, connection: CableConnection, resolved: ResolvedSubscription) -> None:
        self.connection = connection
        self.resolved = resolved
        self.frames = connection.context.frames_for(resolved.identifier)

    def deliver(self, broadcast: Broadcast) -> None:
        self.connection.offer(self.frames.frame(broadcast), counted=True)


class CableConnection:
    transport = "cable"

    def __init__(self, websocket: WebSocket, context: CableContext, principal: Principal | None):
        self.websocket = websocket
        self.context = context
        self.principal = principal
        self.subscriptions: dict[str, CableSubscription] = {}
        self._queue = SendQueue(context.send_queue_size)
        self._goodbye: str | None = None
        self._writer: asyncio.Task[None] | None = None
        self._write_frame = frame_writer(websocket.scope)

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
        if self._queue.idle() and self._write_now(frame):
            if counted:
                _cable_sent.inc()
        elif not self._queue.put(frame, counted):
            self.drop(SLOW_CLIENT, reconnect=True)

    def _write_now(self, frame: str) -> bool:
        """Hand the frame's bytes to the socket, if the server allows it and it has room."""
        write = self._write_frame
        return write is not None and write(self.context.encoder.encode(frame))

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
                await self._send_all(await self._queue.take_all())
        except asyncio.CancelledError:
            if self._goodbye is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._say_goodbye(self._goodbye)
        except Exception:  # the client went away mid-send; the reader sees it too
            return

    async def _send_all(self, frames: list[tuple[str, bool]]) -> None:
        sent = 0
        for frame, counted in frames:
            await self.websocket.send_text(frame)
            sent += counted
        if sent:
            _cable_sent.inc(sent)

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
