"""Real servers and clients for live-channel tests.

``serving(app)`` runs uvicorn in the test's own event loop on a free loopback port:
clients (Python and Node) talk to it over real sockets, while the test reaches the app's
real broker and database, as a domain would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from junction.platform.auth import Scope, create_api_key
from junction.platform.realtime import UVICORN_WEBSOCKET_OPTIONS, Broker
from tests.support.live import free_port


@dataclass
class RunningServer:
    app: FastAPI
    base_url: str

    @property
    def cable_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/cable"

    @property
    def broker(self) -> Broker:
        broker: Broker = self.app.state.broker
        return broker

    async def api_key(self, *scopes: Scope) -> str:
        async with self.app.state.database.transaction() as session:
            _, plain = await create_api_key(session, "test", scopes)
        return plain


# What the ``serve`` fixture answers: ``async with serve(**settings) as server: ...``
ServeFactory = Callable[..., AbstractAsyncContextManager[RunningServer]]


@asynccontextmanager
async def serving(
    app: FastAPI, port: int | None = None, ws: str | None = None
) -> AsyncIterator[RunningServer]:
    """``app`` served on ``port`` (a free loopback port by default) until the block ends,
    with ``junction serve``'s WebSocket options; ``ws`` names another WebSocket protocol."""
    port = port or free_port()
    options = UVICORN_WEBSOCKET_OPTIONS | ({"ws": ws} if ws else {})
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.01)
        while not app.state.startup.migrated:
            await asyncio.sleep(0.01)
        yield RunningServer(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


class CableClient:
    """A plain WebSocket client speaking Action Cable by hand, for protocol details."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket

    async def send(self, command: str, identifier: str, **extra: Any) -> None:
        await self.websocket.send(
            json.dumps({"command": command, "identifier": identifier, **extra})
        )

    async def next_frame(self, *, skip_pings: bool = True, timeout: float = 10) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.websocket.recv(), timeout)
            frame: dict[str, Any] = json.loads(raw)
            if not (skip_pings and frame.get("type") == "ping"):
                return frame

    async def subscribe(self, identifier: str) -> dict[str, Any]:
        await self.send("subscribe", identifier)
        return await self.next_frame()


@asynccontextmanager
async def cable_client(url: str, **options: Any) -> AsyncIterator[CableClient]:
    options.setdefault("subprotocols", ["actioncable-v1-json", "actioncable-unsupported"])
    async with connect(url, compression=None, **options) as websocket:
        yield CableClient(websocket)
