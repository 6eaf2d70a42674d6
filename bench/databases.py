"""The databases a benchmark runs on: SQLite always, PostgreSQL (with Redis) when
JUNCTION_BENCH_DATABASE_URL (and JUNCTION_BENCH_REDIS_URL) are set."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from junction.settings import Settings


def on_each_database(run: Callable[[str, Settings], None]) -> None:
    """``run(name, settings)`` on a fresh SQLite file, then on PostgreSQL if configured."""
    with tempfile.TemporaryDirectory() as directory:
        sqlite = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}", redis_url=None
        )
        run("sqlite", sqlite)
    postgres_url = os.environ.get("JUNCTION_BENCH_DATABASE_URL")
    if postgres_url:
        redis_url = os.environ.get("JUNCTION_BENCH_REDIS_URL") or None
        run("postgresql", Settings(database_url=postgres_url, redis_url=redis_url))
