"""On an idle system, how long from an enqueue's commit to its job starting (p50, p95).

Three set-ups, each with the fallback poll set to 5 s so that only the wake-up path can
make a job start quickly:

* SQLite, embedded: the worker runs in the enqueuing process (the in-process signal);
* PostgreSQL, embedded: the same on PostgreSQL (the signal, and NOTIFY);
* PostgreSQL, separate worker: `junction worker` in its own process (LISTEN/NOTIFY).

Baselines, measured in the same run: on PostgreSQL the bare round trip of a NOTIFY from one
connection to a LISTENing other; on SQLite an INSERT committed on one connection and read by
another once an asyncio event wakes it.

    uv run python bench/jobs_latency.py [--jobs 200]
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

import asyncpg
from sqlalchemy import select

from junction.platform.db import Database
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.models import Job, JobState
from junction.platform.jobs.registry import load_job_modules
from junction.platform.jobs.worker import Worker
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings

REPOSITORY = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("JUNCTION_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
GAP_SECONDS = 0.02
JOB_MODULE = "tests.support.jobs"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def settings_for(url: str) -> Settings:
    return Settings(
        database_url=url,
        job_modules=[JOB_MODULE],
        job_poll_seconds=5.0,
        run_embedded_worker=False,
        log_level="WARNING",
    )


async def fresh_postgres(name: str) -> str:
    connection = await asyncpg.connect(SERVER)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"


async def enqueue_one_at_a_time(database: Database, count: int) -> dict[int, float]:
    committed: dict[int, float] = {}
    for _ in range(count):
        async with database.transaction() as session:
            enqueued = await job_queue.enqueue(session, "tests.noop")
        committed[enqueued.id] = time.time()
        await asyncio.sleep(GAP_SECONDS)
    return committed


async def start_delays(database: Database, committed: dict[int, float]) -> list[float]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with database.reading() as session:
            rows = (
                await session.execute(
                    select(Job.id, Job.started_at).where(
                        Job.id.in_(committed), Job.state == JobState.succeeded.value
                    )
                )
            ).all()
        if len(rows) == len(committed):
            return [(started.timestamp() - committed[job_id]) * 1000 for job_id, started in rows]
        await asyncio.sleep(0.1)
    raise TimeoutError("jobs did not all finish within 60 s")


async def measure_embedded(url: str, count: int) -> list[float]:
    settings = settings_for(url)
    await asyncio.to_thread(upgrade_to_head, settings)
    load_job_modules(settings.job_modules)
    database = Database(settings)
    worker = Worker(database, settings)
    running = asyncio.create_task(worker.run())
    try:
        await start_delays(database, await enqueue_one_at_a_time(database, 5))  # warm up
        return await start_delays(database, await enqueue_one_at_a_time(database, count))
    finally:
        worker.stop()
        await running
        await database.dispose()


async def measure_separate_worker(url: str, count: int) -> list[float]:
    settings = settings_for(url)
    await asyncio.to_thread(upgrade_to_head, settings)
    env = {
        **os.environ,
        "JUNCTION_DATABASE_URL": url,
        "JUNCTION_JOB_MODULES": JOB_MODULE,
        "JUNCTION_JOB_POLL_SECONDS": "5",
        "JUNCTION_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPOSITORY),
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "junction", "worker", env=env, stderr=subprocess.DEVNULL
    )
    database = Database(settings)
    try:
        await start_delays(database, await enqueue_one_at_a_time(database, 5))  # warm up
        return await start_delays(database, await enqueue_one_at_a_time(database, count))
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 30)
        await database.dispose()


async def notify_round_trips(count: int) -> list[float]:
    listener = await asyncpg.connect(SERVER)
    sender = await asyncpg.connect(SERVER)
    arrived: asyncio.Queue[float] = asyncio.Queue()
    await listener.add_listener("bench_latency", lambda *_: arrived.put_nowait(time.time()))
    delays = []
    try:
        for _ in range(count):
            sent = time.time()
            await sender.execute("NOTIFY bench_latency")
            delays.append((await arrived.get() - sent) * 1000)
            await asyncio.sleep(GAP_SECONDS)
    finally:
        await listener.close()
        await sender.close()
    return delays


async def sqlite_event_round_trips(path: Path, count: int) -> list[float]:
    import aiosqlite

    async with aiosqlite.connect(path) as writer, aiosqlite.connect(path) as reader:
        await writer.execute("PRAGMA journal_mode=WAL")
        await writer.execute("CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY)")
        await writer.commit()
        woken = asyncio.Event()
        delays = []
        for number in range(count):
            sent = time.time()
            await writer.execute("INSERT INTO floor (id) VALUES (?)", (number,))
            await writer.commit()
            woken.set()
            await woken.wait()
            woken.clear()
            async with reader.execute("SELECT id FROM floor WHERE id = ?", (number,)) as cursor:
                assert await cursor.fetchone() is not None
            delays.append((time.time() - sent) * 1000)
            await asyncio.sleep(GAP_SECONDS)
    return delays


def report(
    name: str, delays: list[float], baseline: list[float], params: dict[str, object]
) -> None:
    for label, fraction in (("p50", 0.5), ("p95", 0.95)):
        value = percentile(delays, fraction)
        floor = percentile(baseline, fraction)
        line = {
            "name": f"{name}_{label}",
            "value": round(value, 2),
            "unit": "ms",
            "baseline": round(floor, 2),
            "ratio": round(value / floor, 2) if floor else None,
            "params": {**params, "mean_ms": round(statistics.fmean(delays), 2)},
        }
        print(json.dumps(line), flush=True)


async def main(count: int) -> None:
    sys.path.insert(0, str(REPOSITORY))  # the test job handlers live in tests.support
    with tempfile.TemporaryDirectory() as scratch:
        sqlite_url = f"sqlite+aiosqlite:///{scratch}/latency.db"
        floor = await sqlite_event_round_trips(Path(scratch) / "floor.db", count)
        delays = await measure_embedded(sqlite_url, count)
        report("job_start_delay_sqlite_embedded", delays, floor, {"jobs": count})
    notify = await notify_round_trips(count)
    delays = await measure_embedded(await fresh_postgres("junction_bench_latency"), count)
    report("job_start_delay_postgres_embedded", delays, notify, {"jobs": count})
    delays = await measure_separate_worker(await fresh_postgres("junction_bench_latency"), count)
    report("job_start_delay_postgres_separate_worker", delays, notify, {"jobs": count})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    asyncio.run(main(parser.parse_args().jobs))
