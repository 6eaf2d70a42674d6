"""The live connections of one process: the limit on their number, pings and shutdown.

Every connection (a ``/cable`` WebSocket or a ``/api/v1/stream`` response) has a bounded
send queue. A broadcast never waits for a client: it hands each connection the frame,
which is written at once if the connection is not busy writing and queued otherwise, so
a client that reads slowly fills its own queue and is then disconnected, never stalling
the broadcast to the others.

Pings are spread over the interval: each connection is put in one of ``PING_SLOTS`` slots
when it joins, and one slot is pinged per tick. Pinging 10,000 clients at once costs the
event loop about half a second, which a broadcast arriving just then would wait behind.

On SIGTERM or SIGINT every client is told ``disconnect`` (reason ``server_restart``,
reconnect allowed) before uvicorn starts closing sockets: uvicorn's own shutdown closes
WebSockets with code 1012 before the app's lifespan ends, which would be too late to say
anything. So the signal handler uvicorn installs is wrapped, and called once the clients
have been told.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import threading
import time
from types import FrameType
from typing import Any, Protocol

import structlog

from junction.platform.realtime import metrics

log = structlog.get_logger(__name__)

SERVER_RESTART = "server_restart"
SLOW_CLIENT = "slow_client"
TOO_MANY_CONNECTIONS = "too_many_connections"
UNAUTHORIZED = "unauthorized"
CLOSE_ALL_SECONDS = 2.0
PING_SLOTS = 16


def disconnect_frame(reason: str, *, reconnect: bool) -> str:
    return compact_json({"type": "disconnect", "reason": reason, "reconnect": reconnect})


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Member(Protocol):
    transport: str

    def drop(self, reason: str, *, reconnect: bool) -> None:
        """Disconnect, telling the client why; safe to call more than once."""

    def ping(self, frame: str) -> None: ...


class Hub:
    def __init__(self, max_connections: int, ping_interval: float) -> None:
        self.max_connections = max_connections
        self.ping_interval = ping_interval
        self._members: dict[Member, int] = {}
        self._ping_slots: list[set[Member]] = [set() for _ in range(PING_SLOTS)]
        self._next_slot = itertools.cycle(range(PING_SLOTS))
        self._emptied = asyncio.Event()
        self._emptied.set()

    def __len__(self) -> int:
        return len(self._members)

    def has_room(self) -> bool:
        return len(self._members) < self.max_connections

    def join(self, member: Member) -> None:
        slot = next(self._next_slot)
        self._members[member] = slot
        self._ping_slots[slot].add(member)
        self._emptied.clear()
        metrics.CONNECTIONS.labels(member.transport).inc()

    def leave(self, member: Member) -> None:
        slot = self._members.pop(member, None)
        if slot is not None:
            self._ping_slots[slot].discard(member)
            metrics.CONNECTIONS.labels(member.transport).dec()
        if not self._members:
            self._emptied.set()

    async def ping_forever(self) -> None:
        """Action Cable's heartbeat: the stock client reconnects after ~6 s of silence."""
        for slot in itertools.cycle(self._ping_slots):
            await asyncio.sleep(self.ping_interval / PING_SLOTS)
            frame = compact_json({"type": "ping", "message": int(time.time())})
            for member in tuple(slot):
                member.ping(frame)

    async def close_all(self) -> None:
        """Tell every client the server restarts, then wait (bounded) until they are gone."""
        for member in tuple(self._members):
            member.drop(SERVER_RESTART, reconnect=True)
        try:
            await asyncio.wait_for(self._emptied.wait(), CLOSE_ALL_SECONDS)
        except TimeoutError:
            log.warning("live clients still open at shutdown", count=len(self._members))


def notify_clients_before_exit(hub: Hub) -> None:
    """Wrap uvicorn's SIGTERM/SIGINT handler so clients hear ``disconnect`` first."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        original = signal.getsignal(signum)
        # Only uvicorn's handler (a method of its Server, which has should_exit) is
        # wrapped: anything else (pytest's, Python's default) is not ours to delay.
        if not callable(original) or not hasattr(
            getattr(original, "__self__", None), "should_exit"
        ):
            continue
        signal.signal(signum, _notifying_handler(loop, hub, original))


def _notifying_handler(loop: asyncio.AbstractEventLoop, hub: Hub, original: Any) -> Any:
    notified = False

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal notified
        if notified:  # a second signal: do not wait again
            original(signum, frame)
            return
        notified = True

        async def notify_then_exit() -> None:
            try:
                await hub.close_all()
            finally:
                original(signum, frame)

        loop.call_soon_threadsafe(lambda: _keep(loop.create_task(notify_then_exit())))

    return handle


_tasks: set[asyncio.Task[None]] = set()


def _keep(task: asyncio.Task[None]) -> None:
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
