"""Security headers on every answer (errors and refusals included), HSTS over TLS only, and
CORS off by default, on when origins are configured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from junction.app import create_app
from junction.settings import Settings
from tests.support.app import running

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "same-origin",
}
ANSWERS = [
    ("GET", "/up", None),
    ("GET", "/docs", None),
    ("GET", "/console/login", None),
    ("GET", "/no/such/route", None),
    ("PUT", "/up", None),
    ("GET", "/api/v1/users", None),
    ("POST", "/applications", b"not json"),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ANSWERS)
async def test_every_answer_carries_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str, body: bytes | None
) -> None:
    headers = {"Content-Type": "application/json"} if body else {}
    response = await client.request(method, path, content=body, headers=headers)
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (path, response.status_code, name)
    assert "strict-transport-security" not in response.headers


async def test_hsts_only_over_tls(started_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=started_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://junction.test") as tls:
        response = await tls.get("/up")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST"}


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    answer = await client.options("/applications", headers=preflight("https://app.example.com"))
    assert "access-control-allow-origin" not in answer.headers
    simple = await client.get("/up", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in simple.headers


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(update={"cors_allow_origins": ["https://app.example.com"]})
    app = create_app(configured)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://junction.test") as c:
            yield c


async def test_cors_allows_only_the_configured_origins(cors_client: httpx.AsyncClient) -> None:
    allowed = await cors_client.options(
        "/applications", headers=preflight("https://app.example.com")
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.headers["access-control-max-age"] == "600"
    refused = await cors_client.options("/applications", headers=preflight("https://evil.example"))
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    simple = await cors_client.get("/up", headers={"Origin": "https://app.example.com"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    assert simple.headers["x-content-type-options"] == "nosniff"


def test_origins_come_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUNCTION_CORS_ALLOW_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_allow_origins == ["https://a.example", "https://b.example"]
