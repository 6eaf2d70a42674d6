"""No-op jobs enqueued and completed per second: Junction against pgqueuer and procrastinate.

PostgreSQL, each library in a fresh database of its own on the same server, in the same
run. The workers are the processes users run, started and idle before the first enqueue:
`junction worker --concurrency C` as in production (JSON logs at info, to a file), and
`pgq run` with the batch size pgqueuer's performance guide advises for short jobs (one
dequeue of `--pgqueuer-batch` jobs, its schema tuned by its `autovac` settings). Each runs
with one and with two worker processes. This process then enqueues N jobs in batches; the
figure is N divided by the time from the first enqueue to the last completion, as each
library records it in the database. procrastinate (a worker in this process, at the same
concurrency, on fewer jobs: it is much slower) is compared with one `junction worker`.
SQLite: Junction's worker (in this process, as `junction serve` embeds it) against the
database's own floor, the same rows inserted and then updated to done by bare statements.

    uv run --group bench python bench/jobs_throughput.py [--jobs N] [--concurrency 50,200,500]

Each result is one JSON line (bench.report.emit). Set JUNCTION_BENCH_POSTGRES (default
postgresql://postgres@127.0.0.1:5432/postgres) to the server to use; the databases
<prefix>jobs, <prefix>pgqueuer and <prefix>procrastinate are dropped and created there
(JUNCTION_BENCH_DATABASE_PREFIX, default junction_bench_).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pgqueuer
import procrastinate
from pgqueuer import PgQueuer
from pgqueuer.adapters.cli import cli as pgqueuer_cli
from pgqueuer.core import logconfig
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job as PgqJob
from pgqueuer.queries import Queries
from sqlalchemy import func, select, text

from junction.platform.db import Base, Database, utcnow
from junction.platform.jobs import JobContext, JobRegistry
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs.models import Job, JobState
from junction.platform.jobs.registry import load_job_modules
from junction.platform.jobs.registry import registry as job_registry
from junction.platform.jobs.worker import QueueSlots, Worker
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # bench.report, and the test job handlers' module
from bench.report import emit  # noqa: E402

SERVER = os.environ.get("JUNCTION_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = os.environ.get("JUNCTION_BENCH_DATABASE_PREFIX", "junction_bench_")
BATCH = 500
PROCRASTINATE_JOBS = 2_000
JOB_MODULE = "tests.support.jobs"
NOOP = "tests.noop"
# Started workers wait this long, idle, before the first enqueue (as in production).
IDLE_SECONDS = 1.0
STARTUP_TIMEOUT = 60.0
RUN_TIMEOUT = 300.0
PGQUEUER_READY = "pgqueuer worker connected"

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


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:.0f} s")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def worker_processes(
    commands: list[list[str]], env: dict[str, str], logs: Path, ready_line: str
) -> AsyncIterator[None]:
    """Worker processes, each logging to a file of ``logs``, up once each file shows
    ``ready_line``; stopped with SIGTERM, as a deployment stops them."""
    files = [logs / f"worker-{number}.log" for number in range(len(commands))]
    processes = []
    for command, path in zip(commands, files, strict=True):
        with path.open("w") as log_file:
            processes.append(
                await asyncio.create_subprocess_exec(
                    *command, env=env, cwd=REPOSITORY, stdout=log_file, stderr=log_file
                )
            )

    async def all_ready() -> bool:
        if any(process.returncode is not None for process in processes):
            raise RuntimeError(f"a worker exited: {files[0].read_text()[-2000:]}")
        return all(ready_line in path.read_text() for path in files)

    try:
        await until(all_ready, "workers started", STARTUP_TIMEOUT)
        await asyncio.sleep(IDLE_SECONDS)
        yield
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 60)


def junction_worker_env(url: str) -> dict[str, str]:
    """A production worker's environment: JSON logs at info (the defaults of production)."""
    return {
        **os.environ,
        "JUNCTION_ENV": "production",
        "JUNCTION_SECRET_KEY": "bench-" + "x" * 40,
        "JUNCTION_DATABASE_URL": url,
        "JUNCTION_JOB_MODULES": JOB_MODULE,
        "PYTHONPATH": str(REPOSITORY),
    }


async def junction_processes_rate(
    url: str, jobs: int, concurrency: int, processes: int, logs: Path
) -> float:
    settings = Settings(database_url=url, job_modules=[JOB_MODULE], log_level="WARNING")
    await asyncio.to_thread(upgrade_to_head, settings)
    command = [sys.executable, "-m", "junction", "worker", f"--concurrency={concurrency}"]
    database = Database(settings)
    try:
        async with worker_processes(
            [command] * processes, junction_worker_env(url), logs, '"worker started"'
        ):
            started = utcnow()
            await enqueue_junction_jobs(database, NOOP, jobs, job_registry)
            return jobs / (await junction_finished(database, jobs) - started).total_seconds()
    finally:
        await database.dispose()


async def enqueue_junction_jobs(
    database: Database, name: str, jobs: int, registry: JobRegistry
) -> None:
    for offset in range(0, jobs, BATCH):
        async with database.transaction() as session:
            payloads = [{"n": n} for n in range(offset, min(offset + BATCH, jobs))]
            await job_queue.enqueue_many(session, name, payloads, jobs_registry=registry)


async def junction_finished(database: Database, jobs: int) -> datetime:
    """When the last of ``jobs`` finished, once all have: the job's own ``finished_at``, so
    that how often this process looks costs the workers little."""

    async def all_succeeded() -> bool:
        async with database.reading() as session:
            count = await session.scalar(
                select(func.count()).select_from(Job).where(Job.state == JobState.succeeded.value)
            )
        return int(count or 0) >= jobs

    await until(all_succeeded, "Junction's jobs done", RUN_TIMEOUT)
    async with database.reading() as session:
        last = await session.scalar(select(func.max(Job.finished_at)))
    assert last is not None
    return last


@contextlib.asynccontextmanager
async def pgqueuer_worker() -> AsyncIterator[PgQueuer]:
    """What `pgq run` runs in the benchmark's pgqueuer workers: its quick start's factory,
    one dedicated asyncpg connection, as its performance guide advises for a worker."""
    connection = await asyncpg.connect(os.environ["PGDSN"])
    pgq = PgQueuer.from_asyncpg_connection(connection)

    @pgq.entrypoint("noop")
    async def noop(job: PgqJob) -> None:
        return None

    print(PGQUEUER_READY, file=sys.stderr, flush=True)
    try:
        yield pgq
    finally:
        await connection.close()


async def pgqueuer_processes_rate(
    url: str, jobs: int, batch_size: int, processes: int, logs: Path
) -> float:
    connection = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(connection))
        await queries.install()
        await queries.optimize_autovacuum()
        command = [sys.executable, __file__, "--pgqueuer-worker", f"--pgqueuer-batch={batch_size}"]
        env = {**os.environ, "PGDSN": url, "PYTHONPATH": str(REPOSITORY)}
        async with worker_processes([command] * processes, env, logs, PGQUEUER_READY):
            started = datetime.now(UTC)
            for offset in range(0, jobs, BATCH):
                count = min(BATCH, jobs - offset)
                payloads = [f'{{"n": {n}}}'.encode() for n in range(offset, offset + count)]
                await queries.enqueue(["noop"] * count, payloads, [0] * count)
            last = await pgqueuer_finished(connection, jobs)
        return jobs / (last - started).total_seconds()
    finally:
        await connection.close()


def run_pgqueuer_worker(batch_size: int) -> None:
    """The body of `pgq run bench.jobs_throughput:pgqueuer_worker --batch-size N`: its
    logging, its event loop (uvloop when installed) and its supervisor. Called here because
    pgqueuer 1.6's command line refuses its own --log-level default under typer 0.29."""
    logconfig.setup_fancy_logger(logconfig.LogLevel.INFO)
    pgqueuer_cli.asyncio_run(pgqueuer.run(pgqueuer_worker, batch_size=batch_size))


async def pgqueuer_finished(connection: asyncpg.Connection, jobs: int) -> datetime:
    """When the last of ``jobs`` finished, once all have: pgqueuer deletes a done job and
    logs it, with the time, in ``pgqueuer_log``."""
    done = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"

    async def all_succeeded() -> bool:
        return int(await connection.fetchval(done)) >= jobs

    await until(all_succeeded, "pgqueuer's jobs done", RUN_TIMEOUT)
    last: datetime = await connection.fetchval(
        "SELECT max(created) FROM pgqueuer_log WHERE status = 'successful'"
    )
    return last


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


async def junction_embedded_rate(settings: Settings, jobs: int, concurrency: int) -> float:
    database = Database(settings)
    worker = Worker(
        database, settings, queues=[QueueSlots("default", concurrency)], jobs_registry=bench_jobs
    )
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(IDLE_SECONDS)
    started = utcnow()
    await enqueue_junction_jobs(database, "bench.noop", jobs, bench_jobs)
    elapsed = (await junction_finished(database, jobs) - started).total_seconds()
    worker.stop()
    await running
    await database.dispose()
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
    emit(name, value, "jobs/s", baseline, params, digits=1)


async def create_job_tables(settings: Settings) -> None:
    """The job tables alone (as the migration makes them), without the domains' tables."""
    database = Database(settings)
    async with database.write_engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all, tables=[Job.__table__])
    await database.dispose()


def sqlite_settings(url: str) -> Settings:
    return Settings(database_url=url, log_level="WARNING", job_poll_seconds=0.5)


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def against_pgqueuer(
    jobs: int, concurrency: int, batch_size: int, processes: int, logs: Path
) -> None:
    ours = await junction_processes_rate(
        asyncpg_url(await fresh_postgres_database(f"{PREFIX}jobs")),
        jobs,
        concurrency,
        processes,
        logs,
    )
    theirs = await pgqueuer_processes_rate(
        await fresh_postgres_database(f"{PREFIX}pgqueuer"), jobs, batch_size, processes, logs
    )
    params = {
        "jobs": jobs,
        "concurrency": concurrency,
        "batch": BATCH,
        "workers": processes,
        "baseline": "pgqueuer",
        "pgqueuer_batch_size": batch_size,
    }
    report("jobs_throughput_postgres_vs_pgqueuer", ours, theirs, params)


async def against_procrastinate(jobs: int, concurrency: int, logs: Path) -> None:
    ours = await junction_processes_rate(
        asyncpg_url(await fresh_postgres_database(f"{PREFIX}jobs")), jobs, concurrency, 1, logs
    )
    # Fewer jobs for the baseline keep the run under two minutes; the rates compare.
    baseline_jobs = min(jobs, PROCRASTINATE_JOBS)
    theirs = await procrastinate_rate(
        await fresh_postgres_database(f"{PREFIX}procrastinate"), baseline_jobs, concurrency
    )
    params = {"jobs": jobs, "concurrency": concurrency, "batch": BATCH, "workers": 1}
    baseline = {"baseline": "procrastinate", "baseline_jobs": baseline_jobs}
    report("jobs_throughput_postgres", ours, theirs, {**params, **baseline})


async def against_sqlite_floor(jobs: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        settings = sqlite_settings(f"sqlite+aiosqlite:///{path / 'jobs.db'}")
        await create_job_tables(settings)
        ours = await junction_embedded_rate(settings, jobs, concurrency)
        floor = await sqlite_floor_rate(
            sqlite_settings(f"sqlite+aiosqlite:///{path / 'floor.db'}"), jobs
        )
        params = {"jobs": jobs, "concurrency": concurrency, "batch": BATCH, "workers": 1}
        report("jobs_throughput_sqlite", ours, floor, {**params, "baseline": "bare SQL"})


async def main(arguments: argparse.Namespace) -> None:
    load_job_modules([JOB_MODULE])
    with tempfile.TemporaryDirectory() as logs:
        for processes in arguments.workers:
            await against_pgqueuer(
                arguments.jobs,
                arguments.peer_concurrency,
                arguments.pgqueuer_batch,
                processes,
                Path(logs),
            )
        if arguments.only_pgqueuer:
            return
        for concurrency in arguments.concurrency:
            await against_procrastinate(arguments.jobs, concurrency, Path(logs))
            await against_sqlite_floor(arguments.jobs, concurrency)


def numbers(value: str) -> list[int]:
    return [int(part) for part in value.split(",")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument(
        "--concurrency",
        type=numbers,
        default=[50, 200, 500],
        help="Comma-separated: jobs run at once by one worker, against procrastinate and SQL.",
    )
    parser.add_argument(
        "--peer-concurrency",
        type=int,
        default=500,
        help="Jobs run at once by each `junction worker` in the runs against pgqueuer.",
    )
    parser.add_argument("--pgqueuer-batch", type=int, default=100, help="pgqueuer's batch size.")
    parser.add_argument("--workers", type=numbers, default=[1, 2], help="Worker processes.")
    parser.add_argument(
        "--only-pgqueuer", action="store_true", help="Skip procrastinate and SQLite."
    )
    parser.add_argument(
        "--pgqueuer-worker", action="store_true", help="Be one of the pgqueuer workers."
    )
    arguments = parser.parse_args()
    if arguments.pgqueuer_worker:
        run_pgqueuer_worker(arguments.pgqueuer_batch)
    else:
        asyncio.run(main(arguments))
