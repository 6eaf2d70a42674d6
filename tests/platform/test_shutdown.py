"""SIGTERM lets an in-flight request finish, then the server exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import httpx
import pytest

from junction.settings import Settings
from tests.support.live import start_live_server


@pytest.mark.slow
async def test_sigterm_finishes_in_flight_requests(settings: Settings) -> None:
    with start_live_server(settings, command=("-m", "tests.support.slow_server")) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            in_flight = asyncio.create_task(client.get("/test/slow", params={"seconds": 1.5}))
            await asyncio.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            response = await in_flight
            exit_code = await asyncio.to_thread(server.process.wait, 10)
            with pytest.raises(httpx.ConnectError):
                await client.get("/up")
    assert response.status_code == 200
    assert response.json() == {"slept": 1.5}
    assert exit_code == 0


@pytest.mark.slow
def test_serve_runs_several_worker_processes(settings: Settings) -> None:
    command = ("-m", "junction", "serve", "--workers", "2")
    with start_live_server(settings, command=command) as server:
        statuses = {httpx.get(f"{server.base_url}/up").status_code for _ in range(5)}
        children = _children_of(server.process.pid)
        serving = [pid for pid in children if "spawn_main" in _command_line(pid)]
        assert statuses == {200}
        assert server.stop() == 0
    assert len(serving) == 2


def _children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
