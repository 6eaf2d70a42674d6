"""The broker: ``publish(stream, message)`` and ``subscribe(stream, deliver)``.

Two implementations behind one interface:

* ``InProcessBroker`` for the embedded mode: publishing calls every local subscriber.
* ``RedisBroker`` when Redis is configured: a broadcast from any process (web or worker)
  reaches the subscribers of every web process. Each process holds one pub/sub
  connection and subscribes to each stream once, however many of its clients listen to
  it, and fans out locally.

Event ids (used by server-sent events to resume) come from one counter, so they are
totally ordered across streams and, with Redis, across processes: the publisher runs one
Lua script that does ``INCR`` on the counter, appends the message under that id to the
stream's Redis Stream (the bounded replay buffer, trimmed to about
``realtime_replay_buffer_size`` entries) and ``PUBLISH``-es it. Being one script, it is
atomic: pub/sub order is id order, and no process can see a message live that the replay
buffer lacks. A client that resumes after id N is sent every buffered message above N,
from whichever web process it reconnects to.

Redis pub/sub ignores the database number: a ``PUBLISH`` is heard by subscribers connected
to any database of the server. Channel names therefore carry the client's database, so
two deployments (or test runs) sharing one Redis server on different databases never
hear each other's broadcasts.

Messages are JSON-encoded once, by the publisher (pydantic's encoder: datetimes come out
as ISO 8601 with ``Z``); a subscriber receives that text unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pydantic_core
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import pending_after_commit
from junction.platform.realtime import metrics

log = structlog.get_logger(__name__)

KEY_PREFIX = "junction:realtime"
# Streams whose replay buffer an in-process broker keeps; the least recently used go first.
_MAX_REPLAY_STREAMS = 10_000

# Many broadcasts in one call: KEYS are the sequence, then each broadcast's replay log;
# ARGV the replay size and time to live, then each broadcast's channel and payload.
# One script rather than a pipeline of one-broadcast scripts: redis-py checks a
# pipeline's scripts with SCRIPT EXISTS first, a second round trip on every publish.
_PUBLISH_SCRIPT = """
local count = #KEYS - 1
local id = redis.call('INCRBY', KEYS[1], count) - count
local ids = {}
for i = 1, count do
  id = id + 1
  local channel, payload = ARGV[2 * i + 1], ARGV[2 * i + 2]
  redis.call('XADD', KEYS[i + 1], 'MAXLEN', '~', ARGV[1], id .. '-0', 'm', payload)
  redis.call('EXPIRE', KEYS[i + 1], ARGV[2])
  redis.call('PUBLISH', channel, id .. ' ' .. payload)
  ids[i] = id
end
return ids
"""


@dataclass(frozen=True, slots=True)
class Broadcast:
    """One message on one stream: its event id and its JSON text."""

    stream: str
    id: int
    payload: str


@dataclass(frozen=True, slots=True)
class SampledBroadcast:
    """A broadcast as the console lists it: when, where, how big, to how many here."""

    at: datetime
    stream: str
    bytes: int
    subscribers: int


SAMPLE_SECONDS = 0.1
"""At most one broadcast in this long is kept for the console: a busy stream costs nothing
more than a quiet one."""
RECENT_KEPT = 50


Deliver = Callable[[Broadcast], None]
"""Called in the event loop for each broadcast; must not block (it enqueues)."""


def encode_message(message: Any) -> str:
    return pydantic_core.to_json(message).decode()


class Broker(ABC):
    """Local fan-out, shared by both implementations."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Deliver]] = {}
        self.recent: deque[SampledBroadcast] = deque(maxlen=RECENT_KEPT)
        self._sampled_at = 0.0

    @abstractmethod
    async def publish(self, stream: str, message: Any) -> int:
        """Send ``message`` to every subscriber of ``stream``; return its event id."""

    async def publish_many(self, messages: Sequence[tuple[str, Any]]) -> list[int]:
        """Publish each ``(stream, message)`` in order; return their event ids."""
        return [await self.publish(stream, message) for stream, message in messages]

    @abstractmethod
    async def replay(self, stream: str, after_id: int) -> list[Broadcast]:
        """The buffered broadcasts of ``stream`` with an id above ``after_id``, oldest first."""

    async def subscribe(self, stream: str, deliver: Deliver) -> None:
        self._subscribers.setdefault(stream, set()).add(deliver)

    async def unsubscribe(self, stream: str, deliver: Deliver) -> None:
        subscribers = self._subscribers.get(stream)
        if subscribers is not None:
            subscribers.discard(deliver)
            if not subscribers:
                del self._subscribers[stream]

    async def close(self) -> None:
        self._subscribers.clear()

    def _fan_out(self, broadcast: Broadcast) -> None:
        subscribers = tuple(self._subscribers.get(broadcast.stream, ()))
        now = time.monotonic()
        if now - self._sampled_at >= SAMPLE_SECONDS:
            self._sampled_at = now
            self.recent.append(
                SampledBroadcast(
                    datetime.now(UTC), broadcast.stream, len(broadcast.payload), len(subscribers)
                )
            )
        for deliver in subscribers:
            try:
                deliver(broadcast)
            except Exception:
                log.exception("delivering a broadcast failed", stream=broadcast.stream)


class InProcessBroker(Broker):
    def __init__(self, replay_size: int) -> None:
        super().__init__()
        self._ids = itertools.count(1)
        self._replay_size = replay_size
        self._buffers: OrderedDict[str, deque[Broadcast]] = OrderedDict()

    async def publish(self, stream: str, message: Any) -> int:
        broadcast = Broadcast(stream, next(self._ids), encode_message(message))
        self._buffer_for(stream).append(broadcast)
        metrics.BROADCASTS.inc()
        self._fan_out(broadcast)
        return broadcast.id

    async def replay(self, stream: str, after_id: int) -> list[Broadcast]:
        return [b for b in self._buffers.get(stream, ()) if b.id > after_id]

    def _buffer_for(self, stream: str) -> deque[Broadcast]:
        buffer = self._buffers.get(stream)
        if buffer is None:
            buffer = self._buffers[stream] = deque(maxlen=self._replay_size)
            if len(self._buffers) > _MAX_REPLAY_STREAMS:
                self._buffers.popitem(last=False)
        else:
            self._buffers.move_to_end(stream)
        return buffer


class RedisBroker(Broker):
    def __init__(self, redis: Redis, replay_size: int, replay_ttl_seconds: int) -> None:
        super().__init__()
        self._redis = redis
        self._replay_size = replay_size
        self._replay_ttl_seconds = replay_ttl_seconds
        self._publish_script = redis.register_script(_PUBLISH_SCRIPT)
        self._channel_prefix = channel_prefix(redis)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._starting = asyncio.Lock()

    async def publish(self, stream: str, message: Any) -> int:
        [event_id] = await self.publish_many([(stream, message)])
        return event_id

    async def publish_many(self, messages: Sequence[tuple[str, Any]]) -> list[int]:
        """One round trip for all, atomic as one script."""
        keys = [f"{KEY_PREFIX}:seq"]
        args: list[str | int] = [self._replay_size, self._replay_ttl_seconds]
        for stream, message in messages:
            keys.append(_log_key(stream))
            args += (self._channel(stream), encode_message(message))
        event_ids = await self._publish_script(keys=keys, args=args)
        metrics.BROADCASTS.inc(len(messages))
        return [int(event_id) for event_id in event_ids]

    async def replay(self, stream: str, after_id: int) -> list[Broadcast]:
        raw = await self._redis.xrange(_log_key(stream), min=f"({after_id}-0", max="+")
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", raw)
        return [
            Broadcast(stream, int(entry_id.split(b"-", 1)[0]), fields[b"m"].decode())
            for entry_id, fields in entries
        ]

    async def subscribe(self, stream: str, deliver: Deliver) -> None:
        """Add a subscriber; the first of a stream waits until Redis confirms SUBSCRIBE.

        From the confirmation on, no broadcast on the stream is missed.
        """
        confirmed = self._confirmations.get(stream)
        await super().subscribe(stream, deliver)
        if confirmed is not None:
            await asyncio.shield(confirmed)
            return
        confirmed = self._confirmations[stream] = asyncio.get_running_loop().create_future()
        try:
            pubsub = await self._started_pubsub()
            await pubsub.subscribe(self._channel(stream))
            await asyncio.wait_for(asyncio.shield(confirmed), timeout=10)
        except BaseException:
            await super().unsubscribe(stream, deliver)
            await self._stop_listening(stream)
            raise

    async def unsubscribe(self, stream: str, deliver: Deliver) -> None:
        await super().unsubscribe(stream, deliver)
        await self._stop_listening(stream)

    async def close(self) -> None:
        await super().close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def _channel(self, stream: str) -> str:
        return self._channel_prefix + stream

    async def _stop_listening(self, stream: str) -> None:
        if stream in self._subscribers or self._pubsub is None:
            return
        self._confirmations.pop(stream, None)
        try:
            await self._pubsub.unsubscribe(self._channel(stream))
        except Exception as exc:
            log.warning("redis unsubscribe failed", stream=stream, error=str(exc))

    async def _started_pubsub(self) -> PubSub:
        async with self._starting:
            if self._pubsub is None:
                pubsub = self._redis.pubsub()
                # A channel no stream uses, kept subscribed for the broker's lifetime:
                # redis-py then never issues a health-check read on the pub/sub
                # connection, so subscribing from one task while another reads is safe.
                await pubsub.subscribe(self._channel(""))
                self._reader = asyncio.create_task(self._read_forever(pubsub))
                self._pubsub = pubsub
        return self._pubsub

    async def _read_forever(self, pubsub: PubSub) -> None:
        delay = 0.1
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis pub/sub read failed, retrying", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        stream = message["channel"].decode().removeprefix(self._channel_prefix)
        if message["type"] == "subscribe":
            confirmed = self._confirmations.get(stream)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif message["type"] == "message":
            event_id, _, payload = message["data"].decode().partition(" ")
            self._fan_out(Broadcast(stream, int(event_id), payload))


def channel_prefix(redis: Redis) -> str:
    """Pub/sub channels are named by this plus the stream."""
    database = redis.connection_pool.connection_kwargs.get("db", 0)
    return f"{KEY_PREFIX}:{database}:stream:"


def _log_key(stream: str) -> str:
    return f"{KEY_PREFIX}:log:{stream}"


def create_broker(
    redis: Redis | None, *, replay_size: int, replay_ttl_seconds: int = 86_400
) -> Broker:
    """Redis pub/sub when this process has a Redis client, else in-process."""
    if redis is None:
        return InProcessBroker(replay_size)
    return RedisBroker(redis, replay_size, replay_ttl_seconds)


_publishing: set[asyncio.Task[list[int]]] = set()


def publish_after_commit(session: AsyncSession, broker: Broker, stream: str, message: Any) -> None:
    """Publish once the session's transaction commits; never if it rolls back.

    The broadcasts of one transaction go out together, in order, in one ``publish_many``
    per broker (one Redis round trip for a whole batch of chat messages). A failed
    publish is logged, not raised: the write it announces has already committed.
    """
    pending = pending_after_commit(session, "junction.broadcasts", _publish_gathered)
    pending.append((broker, stream, message))


def _publish_gathered(broadcasts: list[tuple[Broker, str, Any]]) -> None:
    # Called by the commit, which an async session runs in the event loop's thread.
    by_broker: dict[Broker, list[tuple[str, Any]]] = {}
    for broker, stream, message in broadcasts:
        by_broker.setdefault(broker, []).append((stream, message))
    for broker, messages in by_broker.items():
        task = asyncio.get_running_loop().create_task(broker.publish_many(messages))
        _publishing.add(task)
        task.add_done_callback(_publish_finished)


def _publish_finished(task: asyncio.Task[list[int]]) -> None:
    _publishing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("publishing after commit failed", error=str(task.exception()))
