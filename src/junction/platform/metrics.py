"""Prometheus metrics of the platform, in the process-wide default registry.

Domains define their own metrics next to their code with the same client library; they
all land in this registry and are served by ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

log = structlog.get_logger(__name__)

HTTP_REQUESTS = Counter(
    "junction_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "junction_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    requests, duration = _request_series(method, route, status)
    requests.inc()
    duration.observe(seconds)


# ``labels()`` turns every value into a string and takes a lock on each call: 5.6 µs a
# request for both series, against 2.1 µs with them looked up once per combination
# (timeit). Methods, route templates and statuses are few; the bound only guards against
# the unexpected.
@functools.lru_cache(maxsize=4096)
def _request_series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    labels = (method, route, str(status))
    return HTTP_REQUESTS.labels(*labels), HTTP_REQUEST_DURATION.labels(*labels)


async def refresh_forever(
    name: str, refresh: Callable[[], Awaitable[None]], every_seconds: float
) -> None:
    """Run a collector's database snapshot every few seconds, never per scrape, so a slow
    database cannot stall ``/metrics``."""
    while True:
        # Waiting first gives a starting process time to migrate before the first query.
        await asyncio.sleep(every_seconds)
        try:
            await asyncio.wait_for(refresh(), timeout=every_seconds)
        except Exception as exc:
            log.warning("metrics refresh failed", metrics=name, error=str(exc))


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
