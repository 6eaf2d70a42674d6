"""Chat message creates: accepted per second, p50/p99 latency, and time from 202 to searchable.

Runs ``junction serve`` (embedded worker included) on SQLite, one process, and with
``--workers N`` processes on PostgreSQL + Redis when ``JUNCTION_BENCH_DATABASE_URL`` /
``JUNCTION_BENCH_REDIS_URL`` are set; the load comes from a separate process over
loopback: ``wrk`` when it is installed (written in C, it costs the shared CPU least), else
``--load-processes`` Python clients (``--client python`` forces them), after two seconds of
the same load that are not measured. The baseline, measured in the same run on the same
database, is a bare INSERT of the same row, one per transaction, at the same concurrency.
Prints one JSON line per figure.

    uv run python bench/chat_messages.py [--seconds 10] [--concurrency 64] [--workers 1]
        [--load-processes 2] [--client wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

# Run as a script, the repository root (home of tests.support) is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.live import start_live_server

from bench.databases import on_each_database
from bench.report import emit
from junction.platform.db import Database, utcnow
from junction.settings import Settings

RATE_LIMITS = '{"default": "10000000/minute", "write": "10000000/minute"}'
APPLICATIONS = 10
WARM_UP_SECONDS = 2.0
CHATS_PER_APPLICATION = 10


async def load(base_url: str, paths: list[str], seconds: float, concurrency: int) -> dict[str, Any]:
    """The load generator's body: POST messages round-robin over ``paths``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def worker(index: int) -> None:
            nonlocal errors
            sent = index
            while time.perf_counter() < deadline:
                path = paths[sent % len(paths)]
                started = time.perf_counter()
                try:
                    response = await client.post(
                        path, json={"message": {"body": f"hello bench {sent}"}}
                    )
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.status_code == 202:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                sent += concurrency

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"elapsed": elapsed, "latencies": latencies, "errors": errors}


# wrk's script: POST round-robin over the paths listed in a file; print one JSON line.
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("CHAT_BENCH_PATHS")) do paths[#paths + 1] = line end
local sent = 0
request = function()
  sent = sent + 1
  local body = '{"message": {"body": "hello bench ' .. sent .. '"}}'
  local headers = {["Content-Type"] = "application/json"}
  return wrk.format("POST", paths[sent % #paths + 1], headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "errors": %d, "p50_ms": %f, "p99_ms": %f}\\n',
    summary.requests, summary.duration / 1e6, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def run_wrk(base_url: str, paths: list[str], seconds: float, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        listed, script = Path(directory) / "paths.txt", Path(directory) / "post.lua"
        listed.write_text("\n".join(paths) + "\n")
        script.write_text(WRK_SCRIPT)
        command = [
            "wrk",
            "-t2",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
        ]
        output = subprocess.run(
            [*command, "-s", str(script), base_url],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "CHAT_BENCH_PATHS": str(listed)},
        )
    result = json.loads(output.stdout.strip().splitlines()[-1])
    accepted = result["requests"] - result["errors"]
    return {**result, "accepted_per_second": accepted / result["seconds"]}


def run_load(
    base_url: str, paths: list[str], args: argparse.Namespace, seconds: float
) -> dict[str, Any]:
    if args.client == "wrk" or (args.client is None and shutil.which("wrk")):
        return run_wrk(base_url, paths, seconds, args.concurrency)
    return run_load_processes(base_url, paths, seconds, args.concurrency, args.load_processes)


def run_load_processes(
    base_url: str, paths: list[str], seconds: float, concurrency: int, processes: int
) -> dict[str, Any]:
    """Start ``processes`` load generators at once, sharing ``concurrency``; merge results."""
    started = []
    for index in range(processes):
        share = concurrency // processes + (index < concurrency % processes)
        spec = {"base_url": base_url, "paths": paths[index:] + paths[:index], "seconds": seconds}
        started.append(
            subprocess.Popen(
                [sys.executable, __file__, "--load", json.dumps({**spec, "c": share})],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    results = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in started]
    latencies = sorted(latency for result in results for latency in result["latencies"])
    elapsed = max(result["elapsed"] for result in results)
    return {
        "accepted_per_second": len(latencies) / elapsed,
        "errors": sum(result["errors"] for result in results),
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0,
    }


async def bare_insert_rate(
    settings: Settings, chat_ids: list[int], seconds: float, c: int
) -> float:
    """Rows/s of a bare INSERT of the same row, one per transaction, ``c`` at once."""
    database = Database(settings)
    inserted = 0
    deadline = time.perf_counter() + seconds
    statement = text(
        "INSERT INTO chat_messages (chat_id, number, body, search_text, created_at, updated_at)"
        " VALUES (:chat, :number, :body, :body, :at, :at)"
    )

    # Above every number in use: a database kept from an earlier run has rows too.
    async with database.reading() as session:
        first_free = int(await session.scalar(text("SELECT max(number) FROM chat_messages")) or 0)
    first_free = max(first_free + 1, 10_000_000)

    async def worker(index: int) -> None:
        nonlocal inserted
        number = first_free + index
        while time.perf_counter() < deadline:
            async with database.transaction() as session:
                await session.execute(
                    statement,
                    {
                        "chat": chat_ids[index % len(chat_ids)],
                        "number": number,
                        "body": f"hello bench {number}",
                        "at": utcnow(),
                    },
                )
            inserted += 1
            number += c

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(c)))
    elapsed = time.perf_counter() - began
    await database.dispose()
    return inserted / elapsed


async def setup(base_url: str) -> tuple[list[str], list[str]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        paths = []
        tokens = []
        for index in range(APPLICATIONS):
            created = await client.post(
                "/applications", json={"application": {"name": f"b{index}"}}
            )
            token = created.json()["token"]
            tokens.append(token)
            for _ in range(CHATS_PER_APPLICATION):
                number = (await client.post(f"/applications/{token}/chats")).json()["number"]
                paths.append(f"/applications/{token}/chats/{number}/messages")
    return tokens, paths


async def time_to_searchable(base_url: str, path: str, samples: int = 30) -> float:
    """Median seconds from a 202 to the first search that finds the message."""
    waits = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for index in range(samples):
            word = f"zq{index}x{int(time.time() * 1000)}"
            await client.post(path, json={"message": {"body": f"probe {word}"}})
            accepted = time.perf_counter()
            for _ in range(2000):
                if (await client.get(f"{path}/search", params={"q": word})).json():
                    break
            waits.append(time.perf_counter() - accepted)
    return statistics.median(waits)


def load_while_probing(
    base_url: str, paths: list[str], args: argparse.Namespace, seconds: float
) -> tuple[dict[str, Any], float]:
    """The load over ``paths``, and meanwhile, from its second second, the time from 202
    to searchable: what a client sees while the server is saturated."""
    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(run_load, base_url, paths, args, seconds)
        time.sleep(1)
        searchable = asyncio.run(time_to_searchable(base_url, paths[1]))
        return loading.result(), searchable


async def chat_ids(settings: Settings) -> list[int]:
    database = Database(settings)
    async with database.reading() as session:
        ids = list((await session.scalars(text("SELECT id FROM chats"))).all())
    await database.dispose()
    return ids


def emit_load(shape: str, result: dict[str, Any], baseline: float, params: dict[str, Any]) -> None:
    shaped = {**params, "shape": shape, "errors": result["errors"]}
    accepted = result["accepted_per_second"]
    emit(f"chat.messages_accepted.{shape}", accepted, "messages/s", baseline, shaped)
    emit(f"chat.latency_p50.{shape}", result["p50_ms"], "ms", None, shaped)
    emit(f"chat.latency_p99.{shape}", result["p99_ms"], "ms", None, shaped)


def bench_database(label: str, settings: Settings, args: argparse.Namespace) -> None:
    from junction.platform.migrations import upgrade_to_head

    upgrade_to_head(settings)
    seconds, concurrency = args.seconds, args.concurrency
    env = {"JUNCTION_RATE_LIMITS": RATE_LIMITS, "JUNCTION_LOG_LEVEL": "WARNING"}
    # SQLite is the embedded mode: one process, which also writes with the least contention.
    workers = args.workers if label == "postgresql" else 1
    command = ("-m", "junction", "serve", "--workers", str(workers))
    with start_live_server(settings, command, **env) as server:
        _, paths = asyncio.run(setup(server.base_url))
        params = {
            "database": label,
            "seconds": seconds,
            "concurrency": concurrency,
            "workers": workers,
            "client": args.client or ("wrk" if shutil.which("wrk") else "python"),
        }
        baseline = asyncio.run(
            bare_insert_rate(settings, asyncio.run(chat_ids(settings)), seconds, concurrency)
        )
        emit("chat.bare_insert", baseline, "rows/s", None, params)
        # Not measured: the server opens its pools, prepares its statements and enqueues
        # each chat's first counts job, as a server that has been up a while already has.
        run_load(server.base_url, paths, args, WARM_UP_SECONDS)
        spread, searchable = load_while_probing(server.base_url, paths, args, seconds)
        emit_load("100_chats", spread, baseline, params)
        emit("chat.time_202_to_searchable.under_load", 1000 * searchable, "ms", None, params)
        emit_load("hot_chat", run_load(server.base_url, paths[:1], args, seconds), baseline, params)
        # And on the idle server, as earlier passes measured it.
        searchable = asyncio.run(time_to_searchable(server.base_url, paths[1]))
        emit("chat.time_202_to_searchable", 1000 * searchable, "ms", None, params)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--workers", type=int, default=1, help="web processes of the server on PostgreSQL"
    )
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--client", choices=["wrk", "python"], help="default: wrk if installed")
    parser.add_argument("--load")
    args = parser.parse_args()
    if args.load:
        spec = json.loads(args.load)
        result = asyncio.run(load(spec["base_url"], spec["paths"], spec["seconds"], spec["c"]))
        print(json.dumps(result))
        return
    on_each_database(lambda name, settings: bench_database(name, settings, args))


if __name__ == "__main__":
    main()
