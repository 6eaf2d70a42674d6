"""Every HTTP connection has Nagle's algorithm off, even from a listener bound as uvicorn's
``--workers N`` binds it (protocol number 0)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from junction.platform.http_protocol import NoDelayHttpToolsProtocol


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("no request is sent")


@pytest.fixture
async def accepted() -> AsyncIterator[socket.socket]:
    """A connection accepted by a TCP listener whose protocol number is 0, as the
    listener uvicorn's ``bind_socket`` makes for ``--workers N``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        assert listener.proto == 0
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        _, writer = await asyncio.open_connection(*listener.getsockname())
        connection, _ = listener.accept()
        connection.setblocking(False)
        yield connection
        writer.close()


async def _no_delay_under(
    connection: socket.socket, protocol: Callable[[], asyncio.BaseProtocol]
) -> int:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(protocol, connection)
    try:
        return int(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    finally:
        transport.close()


async def test_asyncio_leaves_nagle_on_for_such_a_connection(accepted: socket.socket) -> None:
    # The fault the protocol works around: under a plain protocol the setting stays off.
    assert await _no_delay_under(accepted, asyncio.Protocol) == 0


async def test_junctions_protocol_turns_nagle_off(accepted: socket.socket) -> None:
    config = Config(app=_app)
    config.load()
    state = ServerState()
    no_delay = await _no_delay_under(
        accepted, lambda: NoDelayHttpToolsProtocol(config=config, server_state=state, app_state={})
    )
    assert no_delay != 0
