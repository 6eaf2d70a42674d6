"""A client that stops reading is dropped; the others keep receiving every message."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import pytest
from prometheus_client import REGISTRY

from tests.support.realtime import RunningServer, ServeFactory, cable_client

USER_UPDATES = '{"channel":"UserUpdatesChannel"}'
MESSAGES = 200
PAYLOAD = "x" * 50_000  # 10 MB in all: more than loopback socket buffers hold


@pytest.fixture(params=[None, "websockets-sansio"], ids=["prepared-frames", "asgi-only"])
def websocket_protocol(request: pytest.FixtureRequest) -> str | None:
    """Prepared frames stop once the socket's buffer is full; plain ASGI sends wait."""
    protocol: str | None = request.param
    return protocol


async def _stalled_client(server: RunningServer) -> socket.socket:
    """A raw socket that subscribes, then never reads again."""
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /cable HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: actioncable-v1-json\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += await loop.sock_recv(sock, 1)
    assert response.startswith(b"HTTP/1.1 101"), response
    await loop.sock_sendall(
        sock, _masked_text_frame(json.dumps({"command": "subscribe", "identifier": USER_UPDATES}))
    )
    return sock


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def _subscribed(server: RunningServer, count: int) -> None:
    while len(server.app.state.broker._subscribers.get("user_updates", ())) != count:
        await asyncio.sleep(0.01)


def _dropped() -> float:
    return (
        REGISTRY.get_sample_value(
            "junction_realtime_clients_dropped_total", {"reason": "slow_client"}
        )
        or 0.0
    )


async def test_a_stalled_client_is_dropped_and_the_others_keep_receiving(
    serve: ServeFactory,
) -> None:
    dropped_before = _dropped()
    async with (
        serve(realtime_send_queue_size=8) as server,
        cable_client(server.cable_url, max_size=None) as fast,
    ):
        await fast.next_frame()
        assert (await fast.subscribe(USER_UPDATES))["type"] == "confirm_subscription"
        stalled = await _stalled_client(server)
        try:
            await asyncio.wait_for(_subscribed(server, count=2), 10)
            received = []
            # In step with the fast client, which therefore never falls behind.
            for n in range(MESSAGES):
                await server.broker.publish("user_updates", {"n": n, "pad": PAYLOAD})
                received.append((await fast.next_frame())["message"]["n"])
            await asyncio.wait_for(_subscribed(server, count=1), 10)
        finally:
            stalled.close()
    assert received == list(range(MESSAGES))
    assert _dropped() == dropped_before + 1
