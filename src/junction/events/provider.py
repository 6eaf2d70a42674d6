"""The adapter of the ticketing provider: where its feed is, and fetching it safely.

The fetch goes through the platform's ``OutboundClient`` (connect and read timeouts,
retries with backoff, ``Retry-After``). The body is capped at ``provider_max_feed_bytes``
while it is read (the sync kit's ``CappedTransport``), so an endless or huge answer is
refused before it fills memory; compression is declined for the same reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Self

import httpx

from junction.platform.http import OutboundClient, RetryPolicy
from junction.platform.integrations.adapters import PullAdapter
from junction.platform.integrations.demo import demo_emulator_url
from junction.platform.integrations.transport import BodyTooLarge, CappedTransport
from junction.settings import Settings

EMULATOR_NAME = "provider"
FEED_PATH = "/api/events"


class ProviderError(Exception):
    """The feed could not be fetched or was refused before parsing."""


def feed_url(settings: Settings) -> str | None:
    """The configured URL, or in demo mode the provider emulator of this very server."""
    if settings.provider_url:
        return settings.provider_url
    return demo_emulator_url(settings, EMULATOR_NAME, FEED_PATH) if settings.demo else None


class ProviderFeed(PullAdapter[bytes]):
    """The provider's feed as a pull adapter: one page, the whole XML (the provider does
    not page, and its feed has no "changed since")."""

    def __init__(self, settings: Settings) -> None:
        self.url = feed_url(settings)
        self.outbound = OutboundClient(
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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.outbound.aclose()

    async def pages(self, kind: str, since: datetime | None = None) -> AsyncIterator[bytes]:
        """The feed's bytes, or ``ProviderError`` / ``OutboundError`` saying why not."""
        if self.url is None:
            raise ProviderError("JUNCTION_PROVIDER_URL is not set (or run `junction serve --demo`)")
        try:
            response = await self.outbound.get(self.url)
        except BodyTooLarge as exc:
            raise ProviderError(f"the feed {exc}") from None
        if not response.content:
            raise ProviderError("the provider answered with an empty body")
        yield response.content
