"""Direct routes: valid requests answered directly, every other one by the FastAPI route."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from junction.platform.direct_routes import DirectRoute, install_direct_routes
from junction.platform.errors import NotFound, install_error_handlers
from junction.platform.middleware import RequestContextMiddleware

MAX_BODY_BYTES = 1024


class Item(BaseModel):
    name: str = Field(min_length=1)


async def _direct(request: Request, body: bytes) -> Response | None:
    """Answers valid items, declines "decline" (which FastAPI accepts), raises for "missing"."""
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
    return JSONResponse({"via": "direct", "number": int(number), "name": item.name}, 201)


def _create_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=MAX_BODY_BYTES)

    @app.post("/items/{number}", status_code=201)
    async def create_item(number: int, item: Item) -> dict[str, object]:
        return {"via": "fastapi", "number": number, "name": item.name}

    @app.get("/items/{number}")
    async def read_item(number: int) -> dict[str, object]:
        return {"via": "get", "number": number}

    install_direct_routes(app, [DirectRoute("/items/{number}", "POST", _direct)])
    return app


def _logged(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()  # the console log goes to stdout or stderr, as configured
    return captured.out + captured.err


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
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
