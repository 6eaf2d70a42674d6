"""Every failure answers {"errors": [...]} with the right status, never a stack trace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

from junction.platform.errors import Conflict
from junction.settings import LogFormat, Settings


class Widget(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    size: int


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    log_format = getattr(request, "param", settings.log_format)
    return settings.model_copy(update={"log_format": log_format})


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    @app.post("/test/widgets")
    async def create_widget(widget: Widget) -> Widget:
        return widget

    @app.get("/test/pages")
    async def pages(page: int = Query(1, ge=1)) -> dict[str, int]:
        return {"page": page}

    @app.get("/test/conflict")
    async def conflict() -> None:
        raise Conflict("Email has already been taken")

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    return app


async def test_validation_names_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/widgets", json={"name": ""})
    assert response.status_code == 422
    assert response.json() == {
        "errors": ["name: String should have at least 1 character", "size: is required"]
    }


async def test_invalid_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/test/widgets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == {"errors": ["body: is not valid JSON"]}


async def test_missing_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/widgets")
    assert response.status_code == 422
    assert response.json() == {"errors": ["body: is required"]}


async def test_bad_query_parameter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/test/pages", params={"page": "0"})
    assert response.status_code == 422
    assert response.json()["errors"] == ["page: Input should be greater than or equal to 1"]


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"errors": ["Not Found"]}


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/test/pages")
    assert response.status_code == 405
    assert response.json() == {"errors": ["Method Not Allowed"]}
    assert response.headers["allow"] == "GET"


async def test_domain_error_carries_its_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/test/conflict")
    assert response.status_code == 409
    assert response.json() == {"errors": ["Email has already been taken"]}


async def test_declared_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    body = json.dumps({"name": "x" * 2_000_000, "size": 1})
    response = await client.post(
        "/test/widgets", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0].startswith("Request body is larger than the limit")


async def test_streamed_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 65_536

    response = await client.post(
        "/test/widgets", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413


async def test_unsupported_media_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/test/widgets", content=b"<widget/>", headers={"content-type": "application/xml"}
    )
    assert response.status_code == 415
    assert response.json()["errors"] == [
        "Content-Type application/xml is not supported; "
        "send application/json or multipart/form-data"
    ]


@pytest.mark.parametrize("settings", [LogFormat.json], indirect=True)
async def test_unexpected_error_is_a_bare_500(
    capsys: pytest.CaptureFixture[str], client: httpx.AsyncClient
) -> None:
    response = await client.get("/test/boom", headers={"X-Request-ID": "req-500-test"})
    assert response.status_code == 500
    assert response.json() == {"errors": ["Internal server error (request id req-500-test)"]}
    assert "hunter2" not in response.text
    assert response.headers["x-request-id"] == "req-500-test"
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    error = next(line for line in lines if line["event"] == "unhandled error")
    assert error["request_id"] == "req-500-test"
    assert "hunter2" in error["exception"]
