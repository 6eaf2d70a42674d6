"""Request ids, the access log and HTTP metrics."""

from __future__ import annotations

import json

import httpx
import pytest
import structlog
from fastapi import FastAPI

from junction.settings import LogFormat, Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"log_format": LogFormat.json})


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    @app.get("/test/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        structlog.get_logger("test").info("looking up item", item_id=item_id)
        return {"id": item_id}

    return app


def _log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    lines = capsys.readouterr().err.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_request_id_is_accepted_echoed_and_logged(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = await client.get("/test/items/7", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    lines = _log_lines(capsys)
    app_line = next(line for line in lines if line["event"] == "looking up item")
    access = next(line for line in lines if line["event"] == "request")
    assert app_line["request_id"] == "abc-123"
    assert access["request_id"] == "abc-123"
    assert access["route"] == "/test/items/{item_id}"
    assert access["method"] == "GET"
    assert access["status"] == 200
    assert isinstance(access["duration_ms"], float)


async def test_request_id_is_generated_when_missing_or_unsafe(
    client: httpx.AsyncClient,
) -> None:
    generated = (await client.get("/up")).headers["x-request-id"]
    assert len(generated) == 32
    unsafe = await client.get("/up", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] not in ("bad id\twith spaces", generated)


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/test/items/1")
    await client.get("/test/items/2")
    await client.get("/test/items/not-a-number")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    ok = 'method="GET",route="/test/items/{item_id}",status="200"'
    bad = 'method="GET",route="/test/items/{item_id}",status="422"'
    assert _sample(text, f"junction_http_requests_total{{{ok}}}") >= 2
    assert _sample(text, f"junction_http_requests_total{{{bad}}}") >= 1
    assert f'junction_http_request_duration_seconds_bucket{{le="0.005",{ok}}}' in text
    assert "process_resident_memory_bytes" in text


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")
