"""Broadcast frames written straight to the socket under ``junction serve``'s protocol."""

from __future__ import annotations

import pytest

from junction.platform.realtime.prepared_frames import (
    PreparedFramesProtocol,
    TextFrameEncoder,
)
from tests.support.realtime import ServeFactory, cable_client

USER_UPDATES = '{"channel":"UserUpdatesChannel"}'
# Short, 16-bit and 64-bit payload lengths in the frame header, and text beyond ASCII.
MESSAGES = [{"n": 1}, {"n": 2, "pad": "x" * 300}, {"n": 3, "pad": "é" * 70_000}]


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every frame the server wrote through the extension."""
    frames: list[bytes] = []
    write = PreparedFramesProtocol.write_prepared

    def recording(self: PreparedFramesProtocol, frame: bytes) -> bool:
        wrote = write(self, frame)
        if wrote:
            frames.append(frame)
        return wrote

    monkeypatch.setattr(PreparedFramesProtocol, "write_prepared", recording)
    return frames


@pytest.fixture(params=[None, "websockets-sansio"], ids=["prepared-frames", "asgi-only"])
def websocket_protocol(request: pytest.FixtureRequest) -> str | None:
    protocol: str | None = request.param
    return protocol


async def test_broadcasts_arrive_whole_with_and_without_prepared_frames(
    serve: ServeFactory, written: list[bytes], websocket_protocol: str | None
) -> None:
    async with (
        serve() as server,
        cable_client(server.cable_url, max_size=None) as client,
    ):
        await client.next_frame()
        assert (await client.subscribe(USER_UPDATES))["type"] == "confirm_subscription"
        for message in MESSAGES:
            await server.broker.publish("user_updates", message)
        received = [(await client.next_frame())["message"] for _ in MESSAGES]
    assert received == MESSAGES
    broadcasts = [frame for frame in written if b'"message":{"n"' in frame]
    assert len(broadcasts) == (len(MESSAGES) if websocket_protocol is None else 0)


def test_the_encoder_encodes_each_distinct_frame() -> None:
    encoder = TextFrameEncoder()
    first, second = '{"n":1}', '{"n":22}'
    assert encoder.encode(first) == b"\x81\x07" + first.encode()
    assert encoder.encode(first) is encoder.encode(first)
    assert encoder.encode(second) == b"\x81\x08" + second.encode()
    long = "y" * 200
    assert encoder.encode(long) == b"\x81\x7e\x00\xc8" + long.encode()
