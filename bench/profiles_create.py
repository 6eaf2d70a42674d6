"""User creates: created per second through ``POST /api/v1/users``, p50/p99 latency, with the
Airtable sync running.

Runs ``junction serve`` (embedded worker included) on SQLite, and on PostgreSQL + Redis when
``JUNCTION_BENCH_DATABASE_URL`` / ``JUNCTION_BENCH_REDIS_URL`` are set, pointed at the
Airtable emulator in its own process (5 requests/s per base, a 30-second penalty after a
429): every create enqueues its sync job in the same transaction, and the worker drains
them to the emulator while the load runs, so the API carries the real job load. The load
comes from ``--load-processes`` Python clients on loopback, each user with its own email,
for ``--seconds``. The user-create rate limit is lifted through ``JUNCTION_RATE_LIMITS``.

Baseline, measured in the same run on the same database before the server starts: a bare
INSERT of the same user row, one per transaction, at the same concurrency (the rows are
deleted again before the load). Also reported: the records the sync wrote to the emulator
per second during the load (baseline: the throttle's ceiling, 10 records x
``airtable_requests_per_second``), the 429s the emulator sent then (must be 0) and the
shortest span of 6 successive Airtable requests (baseline: 1,000 ms, under which the
emulator answers 429). Prints one JSON line per figure.

    uv run --group bench python bench/profiles_create.py [--seconds 10] [--concurrency 32]
        [--load-processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.live import start_live_server

from bench.airtable_sync import (
    DEFAULT_RATE,
    RECORDS_PER_REQUEST,
    airtable_env,
    start_airtable_emulator,
    tightest_window_ms,
)
from bench.databases import on_each_database
from bench.report import emit
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database, utcnow
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings

BORN = date(1985, 12, 10)
RATE_LIMITS = json.dumps(
    {"default": "1000000/minute", "write": "1000000/minute", "user_create": "1000000/minute"}
)


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    """The load generator's body: ``spec["c"]`` clients POST users, each with a new email."""
    concurrency, prefix = spec["c"], spec["prefix"]
    latencies: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}
    deadline = time.perf_counter() + spec["seconds"]
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"Authorization": f"Bearer {spec['key']}"}
    async with httpx.AsyncClient(
        base_url=spec["base_url"], limits=limits, headers=headers, timeout=30
    ) as client:

        async def worker(index: int) -> None:
            nonlocal errors
            sent = index
            while time.perf_counter() < deadline:
                body = {
                    "first_name": "Ada",
                    "last_name": f"Lovelace {sent}",
                    "email": f"{prefix}-{sent}@example.com",
                    "date_of_birth": "1985-12-10",
                }
                started = time.perf_counter()
                try:
                    response = await client.post("/api/v1/users", json=body)
                except httpx.HTTPError:
                    errors += 1
                    continue
                finally:
                    sent += concurrency
                if response.status_code == 201:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                    code = str(response.status_code)
                    statuses[code] = statuses.get(code, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"elapsed": elapsed, "latencies": latencies, "errors": errors, "statuses": statuses}


def run_load_processes(
    base_url: str, key: str, seconds: float, concurrency: int, processes: int
) -> dict[str, Any]:
    """Start ``processes`` load generators at once, sharing ``concurrency``; merge results."""
    started = []
    run = uuid.uuid4().hex[:8]
    for index in range(processes):
        share = concurrency // processes + (index < concurrency % processes)
        spec = {
            "base_url": base_url,
            "key": key,
            "seconds": seconds,
            "c": share,
            "prefix": f"bench-{run}-{index}",
        }
        started.append(
            subprocess.Popen(
                [sys.executable, __file__, "--load", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    # Start them together, once every one has finished importing.
    for process in started:
        assert process.stdout is not None
        process.stdout.readline()
    for process in started:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in started]
    latencies = sorted(latency for result in results for latency in result["latencies"])
    elapsed = max(result["elapsed"] for result in results)
    statuses: dict[str, int] = {}
    for result in results:
        for code, count in result["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count
    return {
        "created": len(latencies),
        "created_per_second": len(latencies) / elapsed,
        "elapsed": elapsed,
        "errors": sum(result["errors"] for result in results),
        "statuses": statuses,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


async def bare_insert_rate(settings: Settings, seconds: float, c: int) -> float:
    """Rows/s of a bare INSERT of the user row the API writes, one per transaction."""
    database = Database(settings)
    inserted = 0
    deadline = time.perf_counter() + seconds
    statement = text(
        "INSERT INTO users (uuid, first_name, last_name, email, email_key, date_of_birth,"
        " created_at, updated_at, sync_status, sync_version, synced_version, sync_attempts)"
        " VALUES (:uuid, 'Ada', :last_name, :email, :email_key, :born, :at, :at, 'pending',"
        " 1, 0, 0)"
    )

    async def worker(index: int) -> None:
        nonlocal inserted
        number = index
        while time.perf_counter() < deadline:
            email = f"bare-{number}@example.com"
            async with database.transaction() as session:
                await session.execute(
                    statement,
                    {
                        "uuid": str(uuid.uuid4()),
                        "last_name": f"Lovelace {number}",
                        "email": email,
                        "email_key": email,
                        "born": BORN,
                        "at": utcnow(),
                    },
                )
            inserted += 1
            number += c

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(c)))
    elapsed = time.perf_counter() - began
    async with database.transaction() as session:
        await session.execute(text("DELETE FROM users"))
    await database.dispose()
    return inserted / elapsed


async def write_key(settings: Settings) -> str:
    database = Database(settings)
    try:
        async with database.transaction() as session:
            _, plain = await create_api_key(session, "profiles bench", [Scope.write])
        return plain
    finally:
        await database.dispose()


def bench_database(label: str, settings: Settings, args: argparse.Namespace) -> None:
    upgrade_to_head(settings)
    seconds, concurrency = args.seconds, args.concurrency
    params: dict[str, Any] = {
        "database": label,
        "seconds": seconds,
        "concurrency": concurrency,
        "load_processes": args.load_processes,
        "client": "python",
    }
    baseline = asyncio.run(bare_insert_rate(settings, seconds, concurrency))
    emit("profiles.bare_insert", baseline, "rows/s", None, params)
    key = asyncio.run(write_key(settings))
    emulator = start_airtable_emulator()
    try:
        with tempfile.TemporaryDirectory() as files:
            env = {
                **airtable_env(emulator.url),
                "JUNCTION_RATE_LIMITS": RATE_LIMITS,
                "JUNCTION_LOG_LEVEL": "WARNING",
                "JUNCTION_STORAGE_PATH": files,
            }
            with start_live_server(settings, ("-m", "junction", "serve"), **env) as server:
                before = len(emulator.records())
                result = run_load_processes(
                    server.base_url, key, seconds, concurrency, args.load_processes
                )
                records = emulator.records()
                stats = emulator.stats()
        shaped = {**params, "errors": result["errors"], "created": result["created"]}
        if result["statuses"]:
            shaped["statuses"] = result["statuses"]
        emit(
            "profiles.users_created",
            result["created_per_second"],
            "users/s",
            baseline,
            shaped,
        )
        emit("profiles.latency_p50", result["p50_ms"], "ms", None, shaped)
        emit("profiles.latency_p99", result["p99_ms"], "ms", None, shaped)
        synced = {**params, "records": len(records), "requests": sum(stats["requests"].values())}
        ceiling = RECORDS_PER_REQUEST * DEFAULT_RATE
        written = (len(records) - before) / result["elapsed"]
        emit("profiles.sync_records_during_load", written, "records/s", ceiling, synced)
        emit("profiles.sync_429s_during_load", stats["rate_limited"], "429s", None, synced)
        window = tightest_window_ms(records)
        if window is not None:
            emit("profiles.sync_tightest_6_requests", window, "ms", 1000.0, synced)
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--load")
    args = parser.parse_args()
    if args.load:
        print("ready", flush=True)
        sys.stdin.readline()
        print(json.dumps(asyncio.run(load(json.loads(args.load)))))
        return
    on_each_database(lambda name, settings: bench_database(name, settings, args))


if __name__ == "__main__":
    main()
