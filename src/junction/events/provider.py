"""The adapter of the ticketing provider: where its feed is, and fetching it safely.

The fetch goes through the platform's ``OutboundClient`` (connect and read timeouts,
retries with backoff, ``Retry-After``). The body is capped at ``provider_max_feed_bytes``
while it is read, by a transport that counts bytes, so an endless or huge answer is
refused before it fills memory; compression is declined for the same reason (a small
gzip can inflate without bound).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from junction.platform.http import OutboundClient, RetryPolicy
from junction.platform.integrations.demo import demo_emulator_url
from junction.settings import Settings

EMULATOR_NAME = "provider"
FEED_PATH = "/api/events"


class ProviderError(Exception):
    """The feed could not be fetched or was refused before parsing."""


class FeedTooLarge(ProviderError):
    pass


def feed_url(settings: Settings) -> str | None:
    """The configured URL, or in demo mode the provider emulator of this very server."""
    if settings.provider_url:
        return settings.provider_url
    return demo_emulator_url(settings, EMULATOR_NAME, FEED_PATH) if settings.demo else None


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int) -> None:
        self.inner = inner
        self.max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self.inner:
            received += len(chunk)
            if received > self.max_bytes:
                raise FeedTooLarge(f"the feed is larger than {self.max_bytes} bytes; refused")
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
            problem = f"the feed declares {declared} bytes, more than {self.max_bytes}; refused"
        elif encoding != "identity":
            problem = f"the feed came {encoding}-encoded, which is refused"
        if problem is not None:
            await response.aclose()
            raise FeedTooLarge(problem)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self.max_bytes),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def provider_client(settings: Settings) -> OutboundClient:
    return OutboundClient(
        "provider",
        "",
        timeout=httpx.Timeout(
            settings.provider_read_timeout_seconds,
            connect=settings.provider_connect_timeout_seconds,
        ),
        policy=RetryPolicy(attempts=settings.provider_attempts),
        headers={"Accept": "application/xml", "Accept-Encoding": "identity"},
        transport=CappedTransport(settings.provider_max_feed_bytes),
    )


async def fetch_feed(settings: Settings) -> bytes:
    """The feed's bytes, or ``ProviderError`` / ``OutboundError`` saying why not."""
    url = feed_url(settings)
    if url is None:
        raise ProviderError("JUNCTION_PROVIDER_URL is not set (or run `junction serve --demo`)")
    async with provider_client(settings) as client:
        response = await client.get(url)
    if not response.content:
        raise ProviderError("the provider answered with an empty body")
    return response.content
