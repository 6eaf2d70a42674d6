"""The outbound client against real servers: statuses, Retry-After, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from junction.platform.http import (
    CredentialsRejected,
    NotFoundUpstream,
    OutboundClient,
    OutboundError,
    RetryPolicy,
    retry_after_seconds,
)

FAST = RetryPolicy(attempts=4, backoff_base_seconds=0.01, backoff_max_seconds=0.02)


def scripted_server(*answers: tuple[int, dict[str, str]]) -> tuple[Starlette, list[float]]:
    """Answers each request with the next (status, headers); records when each arrived."""
    arrivals: list[float] = []
    remaining = list(answers)

    async def endpoint(request: Request) -> Response:
        arrivals.append(asyncio.get_running_loop().time())
        status, headers = remaining.pop(0) if remaining else (200, {})
        return JSONResponse({"status": status}, status_code=status, headers=headers)

    return Starlette(routes=[Route("/thing", endpoint)]), arrivals


def client_for(app: Starlette, policy: RetryPolicy = FAST) -> OutboundClient:
    return OutboundClient(
        "test", "http://upstream", policy=policy, transport=httpx.ASGITransport(app=app)
    )


async def test_retries_server_errors_then_succeeds() -> None:
    app, arrivals = scripted_server((500, {}), (502, {}), (200, {}))
    async with client_for(app) as client:
        response = await client.get("/thing")
    assert response.status_code == 200
    assert len(arrivals) == 3


async def test_gives_up_after_the_attempts_and_says_why() -> None:
    app, arrivals = scripted_server(*[(503, {})] * 10)
    async with client_for(app) as client:
        with pytest.raises(OutboundError, match="gave up after 4 attempts; last: HTTP 503"):
            await client.get("/thing")
    assert len(arrivals) == 4


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_credentials_stop_at_once(status: int) -> None:
    app, arrivals = scripted_server((status, {}))
    async with client_for(app) as client:
        with pytest.raises(CredentialsRejected, match="credentials were rejected"):
            await client.get("/thing")
    assert len(arrivals) == 1


async def test_not_found_is_reported_without_retry() -> None:
    app, arrivals = scripted_server((404, {}))
    async with client_for(app) as client:
        with pytest.raises(NotFoundUpstream) as raised:
            await client.get("/thing")
    assert raised.value.status == 404
    assert len(arrivals) == 1


async def test_429_waits_out_retry_after() -> None:
    app, arrivals = scripted_server((429, {"Retry-After": "1"}), (200, {}))
    async with client_for(app) as client:
        response = await client.get("/thing")
    assert response.status_code == 200
    assert arrivals[1] - arrivals[0] >= 0.95


async def test_retry_after_beyond_the_cap_fails_with_the_reason() -> None:
    app, _ = scripted_server((429, {"Retry-After": "3600"}))
    policy = RetryPolicy(attempts=3, max_retry_after_seconds=60)
    async with client_for(app, policy) as client:
        with pytest.raises(OutboundError, match="asked to retry after 3600 s"):
            await client.get("/thing")


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    request = httpx.Request("GET", "http://x")
    assert (
        retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"}, request=request)) == 7
    )
    dated = httpx.Response(503, headers={"Retry-After": later}, request=request)
    assert retry_after_seconds(dated, now=now.timestamp()) == 30
    garbage = httpx.Response(503, headers={"Retry-After": "soon"}, request=request)
    assert retry_after_seconds(garbage) is None


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A real socket that accepts connections and never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_read_timeouts_are_retried_then_reported(silent_server: str) -> None:
    policy = RetryPolicy(attempts=2, backoff_base_seconds=0.01)
    async with OutboundClient("test", silent_server, timeout=0.2, policy=policy) as client:
        with pytest.raises(OutboundError, match="gave up after 2 attempts; last: ReadTimeout"):
            await client.get("/anything")
