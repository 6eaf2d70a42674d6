"""Parse + persist of a synthetic provider feed at 10k and 100k zones: time, peak memory,
and the rows an unchanged re-sync writes.

Each size runs in its own process (so peak RSS is its own) on a fresh SQLite database.
Baselines, in the same run: a bare ``executemany`` INSERT of as many zone-like rows on the
same kind of database (time), and the 10k run's peak memory (flatness: ratio near 1).
Goals: memory flat in feed size; 0 rows written on an unchanged re-sync.

    uv run python bench/events_feed.py
"""

from __future__ import annotations

import asyncio
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import emit
from junction.emulators.provider import synthetic_feed
from junction.events import service
from junction.platform.db import Database
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings

SIZES = (10_000, 100_000)


def rss_mb() -> float:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


async def persist(database: Database, feed: Path) -> service.SyncReport:
    with feed.open("rb") as source:
        async with database.transaction() as session:
            return await service.persist_feed(session, source, ZoneInfo("UTC"))


def child(zones: int, workdir: Path) -> None:
    """One size: first sync (timed, memory), then the same feed again (rows written)."""
    feed = workdir / "feed.xml"
    with feed.open("wb") as out:
        for chunk in synthetic_feed(zones):
            out.write(chunk)
    url = f"sqlite+aiosqlite:///{workdir}/feed.db"
    upgrade_to_head(Settings(database_url=url))
    database = Database(Settings(database_url=url))
    before = rss_mb()
    started = time.perf_counter()
    first = asyncio.run(persist(database, feed))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    again = asyncio.run(persist(database, feed))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_growth_mb": peak - before,
                "rows": first.rows_written,
                "resync_rows": again.rows_written,
                "feed_bytes": feed.stat().st_size,
            }
        )
    )


def bare_insert_seconds(rows: int, workdir: Path) -> float:
    connection = sqlite3.connect(workdir / "bare.db")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE zones (id INTEGER PRIMARY KEY, slot_id INT, position INT, "
        "external_id TEXT, name TEXT, capacity INT, price NUMERIC, numbered BOOL)"
    )
    data = [(n // 10, n % 10, str(n % 10), f"Zone {n}", n % 500, "10.50", 1) for n in range(rows)]
    started = time.perf_counter()
    with connection:
        connection.executemany(
            "INSERT INTO zones (slot_id, position, external_id, name, capacity, price, numbered)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            data,
        )
    connection.close()
    return time.perf_counter() - started


def main() -> None:
    results = {}
    for zones in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(zones), tmp],
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            ).stdout
            results[zones] = json.loads(out.strip().splitlines()[-1])
            results[zones]["bare"] = bare_insert_seconds(results[zones]["rows"], Path(tmp))
    smallest = results[SIZES[0]]["peak_growth_mb"]
    for zones, result in results.items():
        params = {
            "zones": zones,
            "feed_bytes": result["feed_bytes"],
            "rows": result["rows"],
            "database": "SQLite (WAL)",
        }
        label = f"{zones // 1000}k"
        emit(
            f"events_feed_persist_{label}", result["seconds"], "s", result["bare"], params, digits=3
        )
        emit(
            f"events_feed_peak_memory_{label}",
            result["peak_growth_mb"],
            "MB",
            smallest,
            params,
            digits=3,
        )
        emit(f"events_feed_resync_rows_{label}", result["resync_rows"], "rows", 0, params, digits=3)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
