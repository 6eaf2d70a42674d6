"""Direct routes: valid requests answered directly, every other one by the FastAPI route."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from junction.platform.application import Application
from junction.platform.direct_routes import DirectRoute
from junction.platform.errors import NotFound, install_error_handlers
from junction.platform.logging import configure_logging
from junction.platform.middleware import RequestContextMiddleware
from junction.settings import Settings

MAX_BODY_BYTES = 1024


class Item(BaseModel):
    name: str = Field(min_length=1)


async def _direct(request: Request, body: bytes) -> Response | None:
    """Answers valid items, declines "decline" (which FastAPI accepts), raises for "missing"
    and fails for "boom"."""
    number = request.path_params["number"]
    if not number.isdigit():
        return None
    try:
        item = Item.model_validate_json(body)
    except ValidationError:
        return None
    if item.name == "decline":
        return None
    if item.name == "missing":
        raise NotFound("No such item")
    if item.name == "boom":
        raise RuntimeError("hunter2")
    return JSONResponse({"via": "direct", "number": int(number), "name": item.name}, 201)


def _create_app() -> Application:
    app = Application(partial(RequestContextMiddleware, max_body_bytes=MAX_BODY_BYTES))
    install_error_handlers(app)

    @app.post("/items/{number}", status_code=201)
    async def create_item(number: int, item: Item) -> dict[str, object]:
        return {"via": "fastapi", "number": number, "name": item.name}

    @app.get("/items/{number}")
    async def read_item(number: int) -> dict[str, object]:
        return {"via": "get", "number": number}

    app.direct_routes.append(DirectRoute("/items/{number}", "POST", _direct))
    return app


def _logged(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()  # the console log goes to stdout or stderr, as configured
    return captured.out + captured.err


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configure_logging(settings)  # as create_app does: the access log at INFO, to the console
    transport = httpx.ASGITransport(app=_create_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_a_valid_request_is_answered_directly(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = await client.post("/items/3", json={"name": "kettle"})
    assert response.status_code == 201
    assert response.json() == {"via": "direct", "number": 3, "name": "kettle"}
    # Logged and counted under the route's template, as FastAPI's own routes are.
    assert "route=/items/{number}" in _logged(capsys)


async def test_a_declined_request_reaches_the_route_with_its_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/items/4", json={"name": "decline"})
    assert response.status_code == 201
    assert response.json() == {"via": "fastapi", "number": 4, "name": "decline"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/items/5", b'{"name": ""}'),
        ("/items/5", b"{not json"),
        ("/items/5", b""),
        ("/items/five", b'{"name": "kettle"}'),
    ],
)
async def test_invalid_requests_get_fastapis_refusal(
    client: httpx.AsyncClient, path: str, body: bytes
) -> None:
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert list(response.json()) == ["errors"]


async def test_errors_raised_by_the_direct_answer_take_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/items/6", json={"name": "missing"})
    assert response.status_code == 404
    assert response.json() == {"errors": ["No such item"]}


async def test_an_unexpected_error_is_a_bare_500_logged_once(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = await client.post(
        "/items/6", json={"name": "boom"}, headers={"X-Request-ID": "req-direct-500"}
    )
    assert response.status_code == 500
    assert response.json() == {"errors": ["Internal server error (request id req-direct-500)"]}
    assert response.headers["x-request-id"] == "req-direct-500"
    logged = _logged(capsys)
    assert logged.count("unhandled error") == 1
    assert "hunter2" in logged


async def test_a_declined_request_is_logged_once_under_the_route_template(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await client.post("/items/five", json={"name": "kettle"})
    logged = _logged(capsys)
    assert logged.count("[junction.access]") == 1
    assert "route=/items/{number}" in logged
    assert "status=422" in logged


async def test_other_methods_go_to_their_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/items/7")).json() == {"via": "get", "number": 7}
    assert (await client.delete("/items/7")).status_code == 405


async def test_an_oversized_body_is_refused_once(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    body = json.dumps({"name": "x" * MAX_BODY_BYTES}).encode()

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield body

    response = await client.post(
        "/items/8", content=streamed(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert list(response.json()) == ["errors"]
    logged = _logged(capsys)
    assert "status=413" in logged
    assert "unhandled error" not in logged


def test_the_direct_route_stays_out_of_the_openapi_description() -> None:
    operations = _create_app().openapi()["paths"]["/items/{number}"]
    assert set(operations) == {"post", "get"}
    assert operations["post"]["operationId"].startswith("create_item")
