"""uvicorn's HTTP protocol, with Nagle's algorithm off on every connection.

With ``--workers N`` uvicorn binds the listening socket itself and leaves its protocol
number at 0. Accepted sockets inherit it, and asyncio turns on ``TCP_NODELAY`` only for a
socket that reports ``IPPROTO_TCP`` (uvicorn issue #3149, open). uvicorn writes a
response as two segments, its head and then its body, so with Nagle's algorithm on the
body waited for the client's delayed acknowledgement: every request after the first on
a kept-alive connection took about 44 ms, and two web processes answered a third of the
chat message creates one process answers (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TCP_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        connection = transport.get_extra_info("socket")
        if connection is not None and connection.family in _TCP_FAMILIES:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
