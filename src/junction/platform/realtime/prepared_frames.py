"""WebSocket frames encoded once per broadcast and written straight to each client's socket.

A broadcast to 10,000 clients is 10,000 sends of the same bytes. Through ASGI each send is
a chain of coroutines (Starlette's ``WebSocket.send``, its exception wrappers, uvicorn's
``send``), an encoding of the same frame again, and an ``asyncio.Event`` wait: about two
thirds of the server's CPU per client per broadcast in ``bench/realtime_fanout.py``.

ASGI lets a server offer what it can do beyond the spec in ``scope["extensions"]``, so
``junction serve`` runs uvicorn with ``PreparedFramesProtocol``: uvicorn's own WebSocket
protocol, which in addition puts ``write`` under ``PREPARED_FRAMES`` in every WebSocket
scope. ``write(frame)`` hands finished frame bytes to the socket at once and returns True,
or returns False, writing nothing, when the connection cannot take them now (not yet
accepted, closing, or its send buffer above the high-water mark); the caller then sends
through ASGI, which waits for the buffer to drain. Under any other server the extension
is absent and every frame goes through ASGI.

Written by hand because neither uvicorn nor Starlette has a way to send one encoded
frame to many connections.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

PREPARED_FRAMES = "junction.websocket.prepared_frames"

WriteFrame = Callable[[bytes], bool]


def frame_writer(scope: Mapping[str, Any]) -> WriteFrame | None:
    """The server's ``write`` for this WebSocket scope; None if the server has none."""
    extension = (scope.get("extensions") or {}).get(PREPARED_FRAMES)
    return None if extension is None else extension["write"]


def encode_text_frame(text: str) -> bytes:
    """A whole unmasked text frame, as a server sends it (RFC 6455 section 5.2)."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class TextFrameEncoder:
    """Encodes a run of sends of the same ``str`` object once.

    A broadcast hands every subscriber the same frame object, so comparing identity (a
    pointer) is enough to know the bytes are already made.
    """

    __slots__ = ("_text", "_wire")

    def __init__(self) -> None:
        self._text: str | None = None
        self._wire = b""

    def encode(self, text: str) -> bytes:
        if text is not self._text:
            self._wire = encode_text_frame(text)
            self._text = text
        return self._wire


class PreparedFramesProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, offering ``PREPARED_FRAMES`` to the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.close_sent:  # not refused by the parser
            # The app's task is created but has not run yet, so it sees the extension.
            self.scope["extensions"][PREPARED_FRAMES] = {"write": self.write_prepared}

    def write_prepared(self, frame: bytes) -> bool:
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
