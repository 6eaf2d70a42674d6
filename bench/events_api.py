"""GET /api/v1/events on a warm cache against the framework's ceiling, measured with wrk.

The same server process also answers ``GET /bench/constant`` with a constant body of the
same size as the events answer: that is the ceiling of FastAPI + uvicorn + Junction's
middleware on this machine, measured in the same run. Goal: at least 80 % of the ceiling
and p99 under 20 ms at 64 connections. A hit on the events route is answered before
FastAPI's routing (platform.http_cache), so it can beat that ceiling.

The headline runs as users run Junction: the JSON access log at info, each request a line
in a file. A second server with the access log off gives the log's cost as a figure of its
own (the cached route's throughput with the log against without; goal at least 0.9).

wrk runs one thread: the server is one process, so one core is its and the other the
load generator's; a second wrk thread only takes CPU from the server being measured.

    uv run python bench/events_api.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi import FastAPI, Request, Response
from tests.support.live import free_port

from bench.report import emit
from junction.app import create_app
from junction.emulators.provider import fixture
from junction.events import service
from junction.platform.db import Database
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings

CONNECTIONS = 64
QUERY = "starts_at=2021-01-01T00:00:00Z&ends_at=2021-12-31T23:59:59Z"


def create_bench_app() -> FastAPI:
    """Junction's app plus the constant-body ceiling route, in one process."""
    app = create_app()
    app.state.constant_body = b"{}"

    @app.put("/bench/constant", include_in_schema=False)
    async def set_constant(request: Request) -> Response:
        app.state.constant_body = await request.body()
        return Response(status_code=204)

    @app.get("/bench/constant", include_in_schema=False)
    async def constant() -> Response:
        return Response(app.state.constant_body, media_type="application/json")

    return app


async def seed(database_url: str) -> None:
    database = Database(Settings(database_url=database_url))
    try:
        for name in ("response_1.xml", "response_2.xml", "response_3.xml"):
            async with database.transaction() as session:
                await service.persist_feed(session, io.BytesIO(fixture(name)), ZoneInfo("UTC"))
    finally:
        await database.dispose()


def wrk(url: str, seconds: int) -> tuple[float, float]:
    """Requests per second and p99 latency in milliseconds."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99_ms


def measure(database_url: str, seconds: int, log_file: Path | None) -> dict[str, float]:
    """One server: its constant route (the ceiling) and the cached events route. With
    ``log_file``, as users run it: JSON access log at info, every request a line in that
    file; without, the access log off (warnings only)."""
    port = free_port()
    env = {
        **os.environ,
        "JUNCTION_DATABASE_URL": database_url,
        "JUNCTION_MIGRATE_ON_START": "false",
        "JUNCTION_RUN_EMBEDDED_WORKER": "false",
        "JUNCTION_LOG_FORMAT": "json",
        "JUNCTION_LOG_LEVEL": "INFO" if log_file else "WARNING",
        "JUNCTION_EVENTS_CACHE_VERSION_CHECK_SECONDS": "5",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "bench.events_api:create_bench_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log", "--loop", Settings().event_loop,  # as `junction serve` runs
    ]  # fmt: skip
    with open(log_file or os.devnull, "wb") as log:
        server = subprocess.Popen(command, env=env, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("server did not start")
                time.sleep(0.2)
            body = httpx.get(f"{base}/api/v1/events?{QUERY}").content
            assert httpx.get(f"{base}/api/v1/events?{QUERY}").headers["x-cache"] == "hit"
            httpx.put(f"{base}/bench/constant", content=body)
            wrk(f"{base}/bench/constant", 2)  # warm-up
            ceiling_rps, ceiling_p99 = wrk(f"{base}/bench/constant", seconds)
            rps, p99 = wrk(f"{base}/api/v1/events?{QUERY}", seconds)
        finally:
            server.terminate()
            server.wait(30)
    if log_file is not None:
        assert log_file.read_text().count('"event": "request"') > rps, "the access log was off"
    return {
        "ceiling_rps": ceiling_rps,
        "ceiling_p99": ceiling_p99,
        "rps": rps,
        "p99": p99,
        "body": len(body),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        upgrade_to_head(Settings(database_url=database_url))
        asyncio.run(seed(database_url))
        logged = measure(database_url, args.seconds, Path(tmp) / "access.log")
        quiet = measure(database_url, args.seconds, None)
    params = {
        "connections": CONNECTIONS,
        "seconds": args.seconds,
        "body_bytes": logged["body"],
        "cpus": os.cpu_count(),
        "server": "uvicorn, 1 process, SQLite, in-process cache",
        "logs": "JSON access log at info, to a file",
    }
    emit("events_api_warm_cache_rps", logged["rps"], "requests/s", logged["ceiling_rps"], params)
    emit("events_api_warm_cache_p99", logged["p99"], "ms", logged["ceiling_p99"], params)
    off = {**params, "logs": "access log off"}
    emit(
        "events_api_warm_cache_rps_logs_off", quiet["rps"], "requests/s", quiet["ceiling_rps"], off
    )
    # The access log's cost: throughput with it against throughput without (goal >= 0.9).
    cost = {**params, "baseline": "the same route with the access log off"}
    emit("events_api_access_log_throughput", logged["rps"], "requests/s", quiet["rps"], cost)


if __name__ == "__main__":
    main()
