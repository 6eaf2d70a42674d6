"""An upstream's answer capped at a size while it is read.

An endless or huge body is refused before it fills memory: by its ``Content-Length``, or
while it streams. Compression is refused too (a small gzip can inflate without bound), so
an adapter using it asks for ``Accept-Encoding: identity``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx


class BodyTooLarge(Exception):
    """The upstream's body is larger than the cap, or came compressed; the message reads
    after the body's name ("the feed ...")."""


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int) -> None:
        self.inner = inner
        self.max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self.inner:
            received += len(chunk)
            if received > self.max_bytes:
                raise BodyTooLarge(f"is larger than {self.max_bytes} bytes; refused")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CappedTransport(httpx.AsyncBaseTransport):
    """Refuses bodies over ``max_bytes`` (by Content-Length, or while streaming)."""

    def __init__(self, max_bytes: int, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.max_bytes = max_bytes
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        encoding = response.headers.get("content-encoding", "identity").lower()
        problem = None
        if declared.isdigit() and int(declared) > self.max_bytes:
            problem = f"declares {declared} bytes, more than {self.max_bytes}; refused"
        elif encoding != "identity":
            problem = f"came {encoding}-encoded, which is refused"
        if problem is not None:
            await response.aclose()
            raise BodyTooLarge(problem)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self.max_bytes),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
