"""The console's pages with many jobs: p95 of the overview, a jobs page filtered by payload
and a job's detail, against a bare indexed SELECT of the same rows.

PostgreSQL holds ``--postgres-jobs`` jobs (one million by default), SQLite ``--sqlite-jobs``
(100,000): finished jobs over the last day, one in a hundred dead, each payload naming one of
10,000 users, so a payload filter matches one job in 10,000. ``junction serve`` runs as
users run it (production settings, JSON access log at info to a file, embedded worker and
scheduler); one client logs in and asks for each page ``--requests`` times in turn, for a
user picked at random each time. The floor is the page's main query sent bare through the
driver on the same database: the newest 51 jobs holding the pair, one job by id, the
queues' ready counts and the day's minutes.

    uv run --group bench python bench/console_pages.py [--postgres-jobs 1000000]
        [--sqlite-jobs 100000] [--requests 200]

Set JUNCTION_BENCH_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres) to the
server; the database junction_bench_console is dropped and created there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.live import start_live_server

from bench.report import emit
from junction.platform.auth import Scope, create_api_key
from junction.platform.db import Database
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings

SERVER = os.environ.get("JUNCTION_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
USERS = 10_000
SECRET = "bench-" + "s" * 40

FILL = {
    "postgresql": """
        INSERT INTO jobs (name, payload, queue, priority, state, attempts, max_attempts,
            timeout_seconds, run_at, created_at, started_at, finished_at, errors)
        SELECT 'bench.report', json_build_object('user_id', i % :users, 'kind', 'report'),
            'default', 0, CASE WHEN i % 100 = 0 THEN 'dead' ELSE 'succeeded' END, 1, 1, 60,
            now() - (i || ' milliseconds')::interval, now() - (i || ' milliseconds')::interval,
            now() - (i || ' milliseconds')::interval, now() - (i || ' milliseconds')::interval,
            '[]'
        FROM generate_series(1, :count) AS i
    """,
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
        INSERT INTO jobs (name, payload, queue, priority, state, attempts, max_attempts,
            timeout_seconds, run_at, created_at, started_at, finished_at, errors)
        SELECT 'bench.report', json_object('user_id', i % :users, 'kind', 'report'),
            'default', 0, CASE WHEN i % 100 = 0 THEN 'dead' ELSE 'succeeded' END, 1, 1, 60,
            datetime('now', '-' || (i / 1000.0) || ' seconds'),
            datetime('now', '-' || (i / 1000.0) || ' seconds'),
            datetime('now', '-' || (i / 1000.0) || ' seconds'),
            datetime('now', '-' || (i / 1000.0) || ' seconds'), '[]'
        FROM n
    """,
}

FLOOR = {
    "postgresql": {
        "filtered": (
            "SELECT * FROM jobs WHERE payload::jsonb @> $1::jsonb ORDER BY id DESC LIMIT 51"
        ),
        "detail": "SELECT * FROM jobs WHERE id = $1",
        "overview": (
            "SELECT queue, state, count(*) FROM jobs WHERE state IN ('queued', 'running') "
            "GROUP BY queue, state; "
            "SELECT * FROM job_minutes WHERE minute >= now() - interval '1 day'"
        ),
    },
    "sqlite": {
        "filtered": (
            "SELECT * FROM jobs WHERE json_extract(payload, '$.user_id') = :user "
            "ORDER BY id DESC LIMIT 51"
        ),
        "detail": "SELECT * FROM jobs WHERE id = :id",
        "overview": (
            "SELECT queue, state, count(*) FROM jobs WHERE state IN ('queued', 'running') "
            "GROUP BY queue, state"
        ),
    },
}


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] * 1000


async def timed(times: int, call: Callable[[], Awaitable[object]]) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return p95(samples)


async def prepare(settings: Settings, dialect: str, count: int) -> str:
    await asyncio.to_thread(upgrade_to_head, settings)
    database = Database(settings)
    try:
        async with database.transaction() as session:
            await session.execute(text(FILL[dialect]), {"users": USERS, "count": count})
            _, key = await create_api_key(session, "bench", [Scope.admin])
        async with database.transaction() as session:
            await session.execute(text("ANALYZE" if dialect == "sqlite" else "ANALYZE jobs"))
    finally:
        await database.dispose()
    return key


async def floors(settings: Settings, dialect: str, times: int, count: int) -> dict[str, float]:
    queries = FLOOR[dialect]
    if dialect == "postgresql":
        connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
        # Each value planned for itself, as the console's query is.
        await connection.execute("SET plan_cache_mode = force_custom_plan")
        try:
            return {
                "filtered": await timed(
                    times,
                    lambda: connection.fetch(
                        queries["filtered"], f'{{"user_id": {random.randrange(USERS)}}}'
                    ),
                ),
                "detail": await timed(
                    times, lambda: connection.fetch(queries["detail"], random.randrange(1, count))
                ),
                "overview": await timed(times, lambda: connection.execute(queries["overview"])),
            }
        finally:
            await connection.close()
    database = Database(settings)
    try:
        async with database.reading() as session:

            async def run(sql: str, **params: object) -> None:
                (await session.execute(text(sql), params)).all()

            return {
                "filtered": await timed(
                    times, lambda: run(queries["filtered"], user=random.randrange(USERS))
                ),
                "detail": await timed(
                    times, lambda: run(queries["detail"], id=random.randrange(1, count))
                ),
                "overview": await timed(times, lambda: run(queries["overview"])),
            }
    finally:
        await database.dispose()


async def pages(base_url: str, key: str, times: int, count: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        login = await client.post(
            "/console/login", files={"key": (None, key)}, headers={"Origin": base_url}
        )
        assert login.status_code == 303, login.text

        async def get(path: str) -> None:
            response = await client.get(path)
            assert response.status_code == 200, (path, response.status_code)

        return {
            "filtered": await timed(
                times, lambda: get(f"/console/jobs?payload=user_id%3D{random.randrange(USERS)}")
            ),
            "detail": await timed(
                times, lambda: get(f"/console/jobs/{random.randrange(1, count)}")
            ),
            "overview": await timed(times, lambda: get("/console")),
        }


def measure(dialect: str, settings: Settings, count: int, times: int) -> None:
    key = asyncio.run(prepare(settings, dialect, count))
    floor = asyncio.run(floors(settings, dialect, times, count))
    # The server's JSON log (info, every request) goes to a file, as a deployment's does.
    env = {"JUNCTION_ENV": "production", "JUNCTION_SECRET_KEY": SECRET}
    with start_live_server(settings, **env) as server:
        page = asyncio.run(pages(server.base_url, key, times, count))
    for name in ("overview", "filtered", "detail"):
        params = {"database": dialect, "jobs": count, "requests": times, "goal_ms": 100}
        emit(f"console_{name}_p95_{dialect}", page[name], "ms", floor[name], params)


async def fresh_database(name: str) -> str:
    connection = await asyncpg.connect(SERVER)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-jobs", type=int, default=1_000_000)
    parser.add_argument("--sqlite-jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        sqlite = Settings(database_url=f"sqlite+aiosqlite:///{directory}/console.db")
        measure("sqlite", sqlite, arguments.sqlite_jobs, arguments.requests)
    url = asyncio.run(fresh_database("junction_bench_console"))
    measure("postgresql", Settings(database_url=url), arguments.postgres_jobs, arguments.requests)


if __name__ == "__main__":
    main()
