"""The stock ``@rails/actioncable`` client, run by Node, against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from junction.platform.auth import Scope
from tests.support.realtime import ServeFactory

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("cable_client.mjs")

pytestmark = pytest.mark.slow


def _node() -> str:
    node = shutil.which("node")
    installed = (ROOT / "node_modules" / "@rails" / "actioncable").is_dir()
    if node and installed:
        return node
    reason = "node is not installed" if not node else "run `npm ci` for @rails/actioncable"
    if os.environ.get("JUNCTION_TEST_REQUIRE_NODE") == "1":
        pytest.fail(f"JUNCTION_TEST_REQUIRE_NODE=1 but {reason}")
    pytest.skip(reason)


class NodeClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    async def wait_for(
        self, event: str, count: int = 1, timeout: float = 20
    ) -> list[dict[str, Any]]:
        """Read lines until ``count`` events of this kind have arrived; return them all."""

        async def read() -> list[dict[str, Any]]:
            assert self.process.stdout is not None
            while len(self.of(event)) < count:
                line = await self.process.stdout.readline()
                if not line:
                    stderr = await self.process.stderr.read() if self.process.stderr else b""
                    raise AssertionError(f"node exited early: {stderr.decode()}")
                self.events.append(json.loads(line))
            return self.of(event)

        return await asyncio.wait_for(read(), timeout)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(e["data"]) for e in self.of("frame")]


@asynccontextmanager
async def node_client(url: str, *identifiers: dict[str, Any]) -> AsyncIterator[NodeClient]:
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(SCRIPT),
        url,
        *(json.dumps(identifier) for identifier in identifiers),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeClient(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


NEW_USER = {
    "type": "new_user",
    "user": {
        "id": 7,
        "first_name": "Zoë",
        "last_name": "O'Brien",
        "email": "zoe@example.com",
        "date_of_birth": "1990-04-01",
        "created_at": "2025-01-02T03:04:05.123Z",
        "synced_at": None,
    },
}
SYNC_STATUS = {"type": "sync_status_update", "user": {"id": 7, "synced_at": "2025-01-02T03:05:00Z"}}


async def test_stock_client_subscribes_and_receives_broadcasts_unchanged(
    serve: ServeFactory,
) -> None:
    async with (
        serve() as server,
        node_client(
            server.cable_url, {"channel": "UserUpdatesChannel"}, {"channel": "JobsChannel"}
        ) as client,
    ):
        await client.wait_for("connected")
        await client.wait_for("rejected")
        await server.broker.publish("user_updates", NEW_USER)
        await server.broker.publish("user_updates", SYNC_STATUS)
        received = await client.wait_for("received", count=2)

    assert client.of("open") == [{"event": "open", "protocol": "actioncable-v1-json"}]
    assert client.frames()[0] == {"type": "welcome"}
    assert [e["identifier"] for e in client.of("connected")] == ['{"channel":"UserUpdatesChannel"}']
    assert [e["identifier"] for e in client.of("rejected")] == ['{"channel":"JobsChannel"}']
    assert [e["data"] for e in received] == [NEW_USER, SYNC_STATUS]
    broadcast_frames = [f for f in client.frames() if "message" in f and f.get("type") != "ping"]
    assert broadcast_frames[0] == {
        "identifier": '{"channel":"UserUpdatesChannel"}',
        "message": NEW_USER,
    }


async def test_stock_client_with_an_admin_key_sees_the_jobs_channel(serve: ServeFactory) -> None:
    async with serve() as server:
        key = await server.api_key(Scope.admin)
        async with node_client(
            f"{server.cable_url}?api_key={key}", {"channel": "JobsChannel"}
        ) as client:
            await client.wait_for("connected")
            await server.broker.publish("jobs", {"type": "job_updated", "id": "j1"})
            received = await client.wait_for("received")
    assert received[0]["data"] == {"type": "job_updated", "id": "j1"}


async def test_stock_client_hears_pings(serve: ServeFactory) -> None:
    async with (
        serve() as server,
        node_client(server.cable_url, {"channel": "UserUpdatesChannel"}) as client,
    ):
        await client.wait_for("frame", count=4)
    pings = [f for f in client.frames() if f.get("type") == "ping"]
    assert pings
    assert all(isinstance(p["message"], int) for p in pings)
