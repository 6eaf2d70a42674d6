"""No-op jobs enqueued and completed per second: Junction against procrastinate.

PostgreSQL: both libraries on the same server in the same run, each in a fresh database
of its own, enqueuing N jobs in batches and running them with the same concurrency in
one worker process; the figure is N divided by the time from the first enqueue to the
last completion. SQLite: Junction against the database's own floor, the same rows
inserted and then updated to done by bare statements in batches.

    uv run --group bench python bench/jobs_throughput.py [--jobs N] [--concurrency 50,200,500]

Each result is one JSON line: {"name", "value", "unit", "baseline", "ratio", "params"}.
Set JUNCTION_BENCH_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres) to
the server to use; the databases junction_bench_jobs and junction_bench_procrastinate
are dropped and created there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import procrastinate
from sqlalchemy import func, select, text

from junction.platform.db import Base, Database, utcnow
from junction.platform.jobs import JobContext, JobRegistry
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.models import Job, JobState
from junction.platform.jobs.worker import QueueSlots, Worker
from junction.settings import Settings

SERVER = os.environ.get("JUNCTION_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 500
PROCRASTINATE_JOBS = 2_000

bench_jobs = JobRegistry()


@bench_jobs.job("bench.noop")
async def noop(job: JobContext) -> None:
    return None


async def fresh_postgres_database(name: str) -> str:
    connection = await asyncpg.connect(SERVER)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return SERVER.rsplit("/", 1)[0] + f"/{name}"


async def junction_rate(settings: Settings, jobs: int, concurrency: int) -> float:
    database = Database(settings)
    worker = Worker(
        database, settings, queues=[QueueSlots("default", concurrency)], jobs_registry=bench_jobs
    )
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.5)  # the worker is up and idle, as in production
    started = utcnow()
    for offset in range(0, jobs, BATCH):
        async with database.transaction() as session:
            payloads = [{"n": n} for n in range(offset, min(offset + BATCH, jobs))]
            await job_queue.enqueue_many(session, "bench.noop", payloads, jobs_registry=bench_jobs)
    # Completion is read from the database, as a client would see it: the last job's
    # finished_at, so that how often this process looks costs the worker little CPU.
    while await _succeeded(database) < jobs:  # noqa: ASYNC110
        await asyncio.sleep(0.25)
    elapsed = (await _last_finished(database) - started).total_seconds()
    worker.stop()
    await running
    await database.dispose()
    return jobs / elapsed


async def _last_finished(database: Database) -> datetime:
    async with database.reading() as session:
        last = await session.scalar(select(func.max(Job.finished_at)))
    assert last is not None
    return last


async def _succeeded(database: Database) -> int:
    async with database.reading() as session:
        count = await session.scalar(
            select(func.count()).select_from(Job).where(Job.state == JobState.succeeded.value)
        )
    return int(count or 0)


async def procrastinate_rate(url: str, jobs: int, concurrency: int) -> float:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop")
    async def noop_task(n: int) -> None:
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        started = time.perf_counter()
        for offset in range(0, jobs, BATCH):
            batch = [{"n": n} for n in range(offset, min(offset + BATCH, jobs))]
            await noop_task.batch_defer_async(*batch)
        await app.run_worker_async(concurrency=concurrency, wait=False)
        elapsed = time.perf_counter() - started
        async with app.connector.pool.connection() as connection:  # type: ignore[attr-defined]
            cursor = await connection.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            )
            row = await cursor.fetchone()
            assert row is not None, "no count"
            assert row[0] == jobs, row
    return jobs / elapsed


async def sqlite_floor_rate(settings: Settings, jobs: int) -> float:
    """The same rows written and marked done with bare SQL: what the database allows."""
    database = Database(settings)
    started = time.perf_counter()
    async with database.write_engine.begin() as connection:
        await connection.execute(text("CREATE TABLE floor (id INTEGER PRIMARY KEY, state TEXT)"))
    for offset in range(0, jobs, BATCH):
        async with database.write_engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO floor (state) VALUES ('queued')"),
                [{} for _ in range(offset, min(offset + BATCH, jobs))],
            )
    for offset in range(0, jobs, BATCH):
        async with database.write_engine.begin() as connection:
            await connection.execute(
                text("UPDATE floor SET state = 'done' WHERE id > :a AND id <= :b"),
                {"a": offset, "b": offset + BATCH},
            )
    elapsed = time.perf_counter() - started
    await database.dispose()
    return jobs / elapsed


def report(name: str, value: float, baseline: float, params: dict[str, Any]) -> None:
    line = {
        "name": name,
        "value": round(value, 1),
        "unit": "jobs/s",
        "baseline": round(baseline, 1),
        "ratio": round(value / baseline, 2),
        "params": params,
    }
    print(json.dumps(line), flush=True)


async def create_job_tables(settings: Settings) -> None:
    """The job tables alone (as the migration makes them), without the domains' tables."""
    database = Database(settings)
    async with database.write_engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all, tables=[Job.__table__])
    await database.dispose()


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, log_level="WARNING", job_poll_seconds=0.5)


async def main(jobs: int, concurrencies: list[int]) -> None:
    for concurrency in concurrencies:
        await compare_at(jobs, concurrency)


async def compare_at(jobs: int, concurrency: int) -> None:
    params = {"jobs": jobs, "concurrency": concurrency, "batch": BATCH, "workers": 1}
    junction_url = await fresh_postgres_database("junction_bench_jobs")
    procrastinate_url = await fresh_postgres_database("junction_bench_procrastinate")
    settings = settings_for(junction_url)
    await create_job_tables(settings)
    ours = await junction_rate(settings, jobs, concurrency)
    # Fewer jobs for the baseline keep the run under two minutes; the rates compare.
    baseline_jobs = min(jobs, PROCRASTINATE_JOBS)
    theirs = await procrastinate_rate(procrastinate_url, baseline_jobs, concurrency)
    baseline = {"baseline": "procrastinate", "baseline_jobs": baseline_jobs}
    report("jobs_throughput_postgres", ours, theirs, {**params, **baseline})

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        settings = settings_for(f"sqlite+aiosqlite:///{path / 'jobs.db'}")
        await create_job_tables(settings)
        ours = await junction_rate(settings, jobs, concurrency)
        floor = await sqlite_floor_rate(
            settings_for(f"sqlite+aiosqlite:///{path / 'floor.db'}"), jobs
        )
        report("jobs_throughput_sqlite", ours, floor, {**params, "baseline": "bare SQL"})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument(
        "--concurrency",
        default="50,200,500",
        help="Comma-separated: jobs run at once by the one worker (both libraries).",
    )
    arguments = parser.parse_args()
    levels = [int(level) for level in arguments.concurrency.split(",")]
    asyncio.run(main(arguments.jobs, levels))
