"""``/api/v1/stream``: the same messages as server-sent events, with resume."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from junction.platform.auth import Scope
from tests.support.realtime import ServeFactory

USER_UPDATES = '{"channel":"UserUpdatesChannel"}'


class EventStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next_event(self, timeout: float = 10) -> dict[str, str]:
        """The next event's fields, skipping keep-alive comments."""

        async def read() -> dict[str, str]:
            fields: dict[str, str] = {}
            async for line in self._lines:
                if not line:
                    if fields:
                        return fields
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(read(), timeout)

    async def subscribed(self, timeout: float = 10) -> None:
        """Wait for the server's ``: subscribed`` comment: broadcasts from now on arrive."""

        async def read() -> None:
            async for line in self._lines:
                if line == ": subscribed":
                    return
            raise AssertionError("the stream ended")

        await asyncio.wait_for(read(), timeout)


@asynccontextmanager
async def event_stream(
    base_url: str, *, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[EventStream]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("GET", "/api/v1/stream", params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


async def test_events_carry_the_cable_frame_and_an_id(serve: ServeFactory) -> None:
    async with (
        serve() as server,
        event_stream(server.base_url, channels="UserUpdatesChannel") as events,
    ):
        await events.subscribed()
        first = await server.broker.publish("user_updates", {"type": "new_user", "user": {"id": 1}})
        event = await events.next_event()
    assert event["id"] == str(first)
    assert json.loads(event["data"]) == {
        "identifier": USER_UPDATES,
        "message": {"type": "new_user", "user": {"id": 1}},
    }


async def test_resume_from_last_event_id(serve: ServeFactory) -> None:
    async with serve() as server:
        ids = [await server.broker.publish("user_updates", {"n": n}) for n in range(5)]
        headers = {"Last-Event-ID": str(ids[1])}
        async with event_stream(server.base_url, headers=headers, channels=USER_UPDATES) as events:
            replayed = [await events.next_event() for _ in range(3)]
            live_id = await server.broker.publish("user_updates", {"n": 5})
            live = await events.next_event()
    assert [int(e["id"]) for e in replayed] == ids[2:]
    assert [json.loads(e["data"])["message"] for e in replayed] == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert int(live["id"]) == live_id


async def test_refusals_use_the_error_shape(serve: ServeFactory) -> None:
    async with serve() as server, httpx.AsyncClient(base_url=server.base_url) as client:
        forbidden = await client.get("/api/v1/stream", params={"channels": "JobsChannel"})
        unknown = await client.get("/api/v1/stream", params={"channels": "Nope"})
        bad_key = await client.get(
            "/api/v1/stream", params={"channels": "UserUpdatesChannel", "api_key": "jk_a_b"}
        )
        bad_id = await client.get(
            "/api/v1/stream",
            params={"channels": "UserUpdatesChannel"},
            headers={"Last-Event-ID": "x"},
        )
    assert forbidden.status_code == 403
    assert "admin" in forbidden.json()["errors"][0]
    assert unknown.status_code == 422
    assert bad_key.status_code == 401
    assert bad_id.status_code == 422


async def test_a_key_opens_private_channels(serve: ServeFactory) -> None:
    async with serve() as server:
        key = await server.api_key(Scope.admin)
        async with event_stream(
            server.base_url,
            headers={"Authorization": f"Bearer {key}"},
            channels="JobsChannel,UserUpdatesChannel",
        ) as events:
            await events.subscribed()
            await server.broker.publish("jobs", {"type": "job_updated"})
            event = await events.next_event()
    assert json.loads(event["data"])["identifier"] == '{"channel":"JobsChannel"}'


@pytest.mark.slow
async def test_curl_streams_events(serve: ServeFactory) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    async with serve() as server:
        published_id = await server.broker.publish("user_updates", {"n": 0})
        process = await asyncio.create_subprocess_exec(
            curl,
            "-sN",
            "-H",
            "Last-Event-ID: 0",
            f"{server.base_url}/api/v1/stream?channels=UserUpdatesChannel",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            lines = [await asyncio.wait_for(process.stdout.readline(), 10) for _ in range(4)]
        finally:
            process.kill()
            await process.wait()
    lines = [line.rstrip(b"\r\n") for line in lines]
    # Ids come from the broker (a Redis counter shared by every process when configured).
    assert lines[:3] == [b": subscribed", b"", f"id: {published_id}".encode()]
    assert json.loads(lines[3].removeprefix(b"data: "))["message"] == {"n": 0}
