"""``GET /api/v1/stream``: the live channels as server-sent events (framing by sse-starlette).

Each event carries the same frame a ``/cable`` client gets, ``{"identifier", "message"}``,
and the broadcast's event id. A client that reconnects with ``Last-Event-ID`` (or
``?last_event_id=``) first receives every message after that id still in the replay
buffer, then the live ones; none twice. The comment ``: subscribed`` comes first, once
the stream is listening. A slow client receives
``event: disconnect`` and the stream ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from junction.platform.auth import Principal
from junction.platform.errors import (
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from junction.platform.realtime import metrics
from junction.platform.realtime.broker import Broadcast, Deliver
from junction.platform.realtime.cable import CableContext
from junction.platform.realtime.channels import (
    InvalidApiKey,
    ResolvedSubscription,
    SubscriptionRejected,
    UnknownChannel,
    authenticate,
)
from junction.platform.realtime.connections import SLOW_CLIENT, compact_json

log = structlog.get_logger(__name__)
router = APIRouter(tags=["live channels"])

PING_SECONDS = 15
# A write that waits this long on a client means it stopped reading.
SEND_TIMEOUT_SECONDS = 10.0
_sse_sent = metrics.MESSAGES_SENT.labels("sse")

CHANNELS_HELP = (
    "Channel names, comma-separated (`UserUpdatesChannel,JobsChannel`), or one Action Cable "
    'identifier per parameter (`{"channel":"ChatChannel","application_token":"...",'
    '"chat_number":1}`). Repeatable.'
)


@router.get("/api/v1/stream", summary="Live channels as server-sent events")
async def stream(
    request: Request,
    channels: Annotated[list[str], Query(description=CHANNELS_HELP)],
    last_event_id: Annotated[str | None, Header()] = None,
    last_event_id_param: Annotated[str | None, Query(alias="last_event_id")] = None,
) -> EventSourceResponse:
    """Server-sent events of the named channels; `api_key` or a Bearer key for private ones."""
    context: CableContext = request.app.state.cable
    if not context.hub.has_room():
        metrics.CLIENTS_DROPPED.labels("too_many_connections").inc()
        raise ServiceUnavailable("Too many live connections", headers={"Retry-After": "5"})
    try:
        principal = await authenticate(request, context.database)
    except InvalidApiKey as exc:
        raise Unauthorized(str(exc)) from None
    subscriptions = [
        await _resolve(context, identifier, principal) for identifier in _identifiers(channels)
    ]
    after = _event_id(last_event_id_param or last_event_id)
    client = SseClient(context, subscriptions)
    return EventSourceResponse(
        client.events(after),
        ping=PING_SECONDS,
        send_timeout=SEND_TIMEOUT_SECONDS,
    )


def _identifiers(values: Sequence[str]) -> list[str]:
    identifiers: list[str] = []
    for value in values:
        if value.lstrip().startswith("{"):
            identifiers.append(value)
        else:
            names = (name.strip() for name in value.split(","))
            identifiers.extend(compact_json({"channel": name}) for name in names if name)
    if not identifiers:
        raise ValidationFailed("channels: name at least one channel")
    return list(dict.fromkeys(identifiers))


async def _resolve(
    context: CableContext, identifier: str, principal: Principal | None
) -> ResolvedSubscription:
    try:
        return await context.channels.resolve(identifier, principal, context.database)
    except UnknownChannel as exc:
        raise ValidationFailed(f"channels: {exc}") from None
    except SubscriptionRejected as exc:
        raise Forbidden(str(exc)) from None


def _event_id(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise ValidationFailed("Last-Event-ID: must be an event id from this stream")
    return int(value)


class SseClient:
    transport = "sse"

    def __init__(self, context: CableContext, subscriptions: list[ResolvedSubscription]):
        self.context = context
        self.subscriptions = subscriptions
        self._queue: asyncio.Queue[tuple[Broadcast, str] | None] = asyncio.Queue(
            context.send_queue_size
        )
        self._prefixes = {s.identifier: _frame_prefix(s.identifier) for s in subscriptions}
        self._delivers = [
            (stream, self._deliverer(self._prefixes[s.identifier]))
            for s in subscriptions
            for stream in s.streams
        ]
        self._goodbye: str | None = None

    async def events(self, after: int | None) -> AsyncIterator[ServerSentEvent]:
        hub = self.context.hub
        hub.join(self)
        try:
            seen = await self._subscribe(after)
            # From here on no broadcast is missed: clients (and tests) may wait for this.
            yield ServerSentEvent(comment="subscribed")
            for broadcast, prefix in seen.replayed:
                yield _event(broadcast, prefix)
            while self._goodbye is None:
                item = await self._queue.get()
                if item is None or self._goodbye is not None:
                    break
                broadcast, prefix = item
                if broadcast.id > seen.high_water.get(broadcast.stream, 0):
                    yield _event(broadcast, prefix)
            yield ServerSentEvent(self._goodbye, event="disconnect")
        finally:
            hub.leave(self)
            await self._unsubscribe()

    def drop(self, reason: str, *, reconnect: bool) -> None:
        if self._goodbye is not None:
            return
        metrics.CLIENTS_DROPPED.labels(reason).inc()
        self._goodbye = compact_json(
            {"type": "disconnect", "reason": reason, "reconnect": reconnect}
        )
        if not self._queue.full():
            self._queue.put_nowait(None)

    def ping(self, frame: str) -> None:
        """Server-sent events have their own keep-alive comments (sse-starlette's ping)."""

    async def _subscribe(self, after: int | None) -> _Replay:
        """Subscribe first, then read the replay buffer: a message in both is sent once."""
        broker = self.context.broker
        for stream, deliver in self._delivers:
            await broker.subscribe(stream, deliver)
        for subscription in self.subscriptions:
            metrics.SUBSCRIPTIONS.labels(subscription.channel).inc()
        replay = _Replay()
        if after is not None:
            for subscription in self.subscriptions:
                prefix = self._prefixes[subscription.identifier]
                for stream in subscription.streams:
                    for broadcast in await broker.replay(stream, after):
                        replay.add(broadcast, prefix)
        replay.replayed.sort(key=lambda item: item[0].id)
        return replay

    async def _unsubscribe(self) -> None:
        for stream, deliver in self._delivers:
            try:
                await self.context.broker.unsubscribe(stream, deliver)
            except Exception:
                log.exception("unsubscribing an SSE client failed", stream=stream)
        for subscription in self.subscriptions:
            metrics.SUBSCRIPTIONS.labels(subscription.channel).dec()

    def _deliverer(self, prefix: str) -> Deliver:
        def deliver(broadcast: Broadcast) -> None:
            if self._goodbye is not None:
                return
            try:
                self._queue.put_nowait((broadcast, prefix))
            except asyncio.QueueFull:
                self.drop(SLOW_CLIENT, reconnect=True)

        return deliver


class _Replay:
    def __init__(self) -> None:
        self.replayed: list[tuple[Broadcast, str]] = []
        self.high_water: dict[str, int] = {}

    def add(self, broadcast: Broadcast, prefix: str) -> None:
        self.replayed.append((broadcast, prefix))
        current = self.high_water.get(broadcast.stream, 0)
        self.high_water[broadcast.stream] = max(current, broadcast.id)


def _frame_prefix(identifier: str) -> str:
    return '{"identifier":' + json.dumps(identifier) + ',"message":'


def _event(broadcast: Broadcast, prefix: str) -> ServerSentEvent:
    _sse_sent.inc()
    return ServerSentEvent(prefix + broadcast.payload + "}", id=str(broadcast.id))
