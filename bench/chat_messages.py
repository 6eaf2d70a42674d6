"""Chat message creates: accepted per second, p50/p99 latency, and time from 202 to searchable.

Runs ``junction serve`` (embedded worker included) on SQLite, and on PostgreSQL + Redis
when ``JUNCTION_BENCH_DATABASE_URL`` / ``JUNCTION_BENCH_REDIS_URL`` are set; the load
comes from a separate process over loopback. The baseline, measured in the same run on
the same database, is a bare INSERT of the same row, one per transaction, at the same
concurrency. Prints one JSON line per figure.

    uv run python bench/chat_messages.py [--seconds 10] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

# Run as a script, the repository root (home of tests.support) is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.live import start_live_server

from junction.platform.db import Database, utcnow
from junction.settings import Settings

RATE_LIMITS = '{"default": "10000000/minute", "write": "10000000/minute"}'
APPLICATIONS = 10
CHATS_PER_APPLICATION = 10


def emit(
    name: str, value: float, unit: str, baseline: float | None, params: dict[str, Any]
) -> None:
    ratio = round(value / baseline, 3) if baseline else None
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 2),
                "unit": unit,
                "baseline": None if baseline is None else round(baseline, 2),
                "ratio": ratio,
                "params": params,
            }
        ),
        flush=True,
    )


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
                response = await client.post(
                    path, json={"message": {"body": f"hello bench {sent}"}}
                )
                if response.status_code == 202:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                sent += concurrency

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "accepted_per_second": len(latencies) / elapsed,
        "accepted": len(latencies),
        "errors": errors,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0,
    }


def run_load_process(base_url: str, paths: list[str], seconds: float, concurrency: int) -> Any:
    spec = json.dumps({"base_url": base_url, "paths": paths, "seconds": seconds, "c": concurrency})
    output = subprocess.run(
        [sys.executable, __file__, "--load", spec], capture_output=True, text=True, check=True
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


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

    async def worker(index: int) -> None:
        nonlocal inserted
        number = 10_000_000 + index
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


async def chat_ids(settings: Settings) -> list[int]:
    database = Database(settings)
    async with database.reading() as session:
        ids = list((await session.scalars(text("SELECT id FROM chats"))).all())
    await database.dispose()
    return ids


def bench_database(label: str, settings: Settings, seconds: float, concurrency: int) -> None:
    from junction.platform.migrations import upgrade_to_head

    upgrade_to_head(settings)
    env = {"JUNCTION_RATE_LIMITS": RATE_LIMITS, "JUNCTION_LOG_LEVEL": "WARNING"}
    with start_live_server(settings, **env) as server:
        _, paths = asyncio.run(setup(server.base_url))
        params = {"database": label, "seconds": seconds, "concurrency": concurrency}
        baseline = asyncio.run(
            bare_insert_rate(settings, asyncio.run(chat_ids(settings)), seconds, concurrency)
        )
        emit("chat.bare_insert", baseline, "rows/s", None, params)
        for shape, targets in (("100_chats", paths), ("hot_chat", paths[:1])):
            result = run_load_process(server.base_url, targets, seconds, concurrency)
            shaped = {**params, "shape": shape, "errors": result["errors"]}
            emit(
                f"chat.messages_accepted.{shape}",
                result["accepted_per_second"],
                "messages/s",
                baseline,
                shaped,
            )
            emit(f"chat.latency_p50.{shape}", result["p50_ms"], "ms", None, shaped)
            emit(f"chat.latency_p99.{shape}", result["p99_ms"], "ms", None, shaped)
        searchable = asyncio.run(time_to_searchable(server.base_url, paths[1]))
        emit("chat.time_202_to_searchable", 1000 * searchable, "ms", None, params)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--load")
    args = parser.parse_args()
    if args.load:
        spec = json.loads(args.load)
        result = asyncio.run(load(spec["base_url"], spec["paths"], spec["seconds"], spec["c"]))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as directory:
        sqlite = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}", redis_url=None
        )
        bench_database("sqlite", sqlite, args.seconds, args.concurrency)
    postgres_url = os.environ.get("JUNCTION_BENCH_DATABASE_URL")
    if postgres_url:
        postgres = Settings(
            database_url=postgres_url, redis_url=os.environ.get("JUNCTION_BENCH_REDIS_URL") or None
        )
        bench_database("postgresql", postgres, args.seconds, args.concurrency)


if __name__ == "__main__":
    main()
