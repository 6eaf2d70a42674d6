"""The outbound HTTP client every integration uses: timeouts, retries, Retry-After.

A thin layer over ``httpx.AsyncClient``. The retry loop is written here rather than taken
from tenacity or stamina because its decisions depend on the response itself: 429 and 503
carry a ``Retry-After`` (seconds or an HTTP date) that must replace the computed backoff,
401/403 must stop at once, and every attempt must be logged and counted by integration.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from prometheus_client import Counter

log = structlog.get_logger(__name__)

OUTBOUND_REQUESTS = Counter(
    "junction_outbound_requests_total",
    "Outbound HTTP attempts by integration and outcome (status code or error type).",
    ["integration", "outcome"],
)

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0
    """A Retry-After longer than this is not waited out: the call fails and says so."""

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2**attempt)
        return random.uniform(0, ceiling)


class OutboundError(Exception):
    """A call that failed for good, after its retries; ``status`` is None for transport errors."""

    def __init__(self, integration: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{integration}: {message}")
        self.integration = integration
        self.status = status


class CredentialsRejected(OutboundError):
    """401 or 403: retrying cannot help; the configured credentials are wrong."""


class NotFoundUpstream(OutboundError):
    """404 from the remote system."""


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return max(0.0, (moment - current).total_seconds())


class OutboundClient:
    """Calls one external system; ``request`` retries what is worth retrying."""

    def __init__(
        self,
        integration: str,
        base_url: str,
        *,
        timeout: httpx.Timeout | float = 10.0,
        policy: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.integration = integration
        self.policy = policy or RetryPolicy()
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            headers=dict(headers or {}),
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The response of the first successful attempt (2xx/3xx), or an OutboundError."""
        last_problem = "no attempt made"
        for attempt in range(self.policy.attempts):
            try:
                response = await self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc or 'no detail'}"
                self._record(attempt, type(exc).__name__, last_problem)
                wait = self.policy.backoff(attempt)
            else:
                if response.status_code < 400:
                    self._record(attempt, str(response.status_code), None)
                    return response
                last_problem = f"HTTP {response.status_code} from {method} {url}"
                self._record(attempt, str(response.status_code), last_problem)
                self._raise_if_final(response, last_problem)
                wait = self._wait_for(response, attempt, last_problem)
            if attempt + 1 < self.policy.attempts:
                await asyncio.sleep(wait)
        raise OutboundError(
            self.integration,
            f"gave up after {self.policy.attempts} attempts; last: {last_problem}",
        )

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    def _raise_if_final(self, response: httpx.Response, problem: str) -> None:
        status = response.status_code
        if status in (401, 403):
            raise CredentialsRejected(
                self.integration, f"{problem}: the credentials were rejected", status
            )
        if status == 404:
            raise NotFoundUpstream(self.integration, problem, status)
        if status not in RETRYABLE_STATUSES:
            raise OutboundError(self.integration, f"{problem}: {response.text[:200]}", status)

    def _wait_for(self, response: httpx.Response, attempt: int, problem: str) -> float:
        requested = retry_after_seconds(response)
        if requested is None:
            return self.policy.backoff(attempt)
        if requested > self.policy.max_retry_after_seconds:
            raise OutboundError(
                self.integration,
                f"{problem}: asked to retry after {requested:.0f} s, more than the "
                f"{self.policy.max_retry_after_seconds:.0f} s this call may wait",
                response.status_code,
            )
        return requested

    def _record(self, attempt: int, outcome: str, problem: str | None) -> None:
        OUTBOUND_REQUESTS.labels(self.integration, outcome).inc()
        if problem is not None:
            log.warning(
                "outbound call failed",
                integration=self.integration,
                attempt=attempt + 1,
                attempts=self.policy.attempts,
                error=problem,
            )
