"""Records synced per second from the wellness emulator: a full sync of 100,000 clients and
200,000 appointments, then an incremental sync after 1 % of them changed, with peak memory.

Baselines, measured in the same run: for the full sync, paging through the same lists
without writing anything (the emulator and HTTP alone); for the incremental sync, the full
sync's own time. Goal: the incremental sync costs under 5 % of the full sync's time.

The emulator runs in its own process on loopback; the database is a fresh SQLite file
(or JUNCTION_BENCH_DATABASE_URL, an empty PostgreSQL database).

    uv run python bench/wellness_sync.py [--clients 100000] [--appointments 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.live import free_port

from bench.report import emit
from junction.platform.db import Database
from junction.platform.logging import configure_logging
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings
from junction.wellness.client import WellnessApi
from junction.wellness.models import SyncKind
from junction.wellness.service import SyncEngine, SyncRequest

API_KEY = "bench-key"
PAGE_SIZE = 1000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_emulator(clients: int, appointments: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "junction.emulators.wellness",
            "--port",
            str(port),
            "--clients",
            str(clients),
            "--appointments",
            str(appointments),
            "--api-key",
            API_KEY,
        ],
        stdout=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base_url}/_admin/stats", timeout=1)
            return process, base_url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the emulator did not start")


async def fetch_only(settings: Settings) -> tuple[float, int]:
    """The baseline: every page of both lists, parsed as JSON, nothing written."""
    started = time.perf_counter()
    records = 0
    async with WellnessApi(settings) as api:
        for kind in SyncKind:
            async for page in api.pages(kind.value, None):
                records += len(page.records)
    return time.perf_counter() - started, records


async def sync_both(database: Database, settings: Settings) -> tuple[float, int, list[str]]:
    engine = SyncEngine(database, settings)
    started = time.perf_counter()
    fetched = 0
    statuses = []
    for kind in SyncKind:
        report = await engine.run(SyncRequest(kind, "bench"))
        fetched += report.counts.fetched
        statuses.append(f"{kind.value}:{report.mode}:{report.status}:{report.error or ''}")
    return time.perf_counter() - started, fetched, statuses


async def main(clients: int, appointments: int, changed_share: float) -> None:
    process, base_url = start_emulator(clients, appointments)
    with tempfile.TemporaryDirectory() as directory:
        url = os.environ.get(
            "JUNCTION_BENCH_DATABASE_URL", f"sqlite+aiosqlite:///{directory}/bench.db"
        )
        settings = Settings(
            database_url=url,
            wellness_api_url=base_url,
            wellness_api_key=API_KEY,
            wellness_page_size=PAGE_SIZE,
            log_level="WARNING",
        )
        configure_logging(settings)
        await asyncio.to_thread(upgrade_to_head, settings)
        database = Database(settings)
        params: dict[str, object] = {
            "clients": clients,
            "appointments": appointments,
            "page_size": PAGE_SIZE,
            "database": "sqlite" if settings.is_sqlite else "postgresql",
        }
        try:
            baseline, total = await fetch_only(settings)
            full, fetched, statuses = await sync_both(database, settings)
            assert fetched == total, statuses
            emit(
                "wellness_full_sync", total / full, "records/s", total / baseline, params, digits=3
            )
            emit("wellness_full_sync_seconds", full, "s", baseline, params, digits=3)
            emit("wellness_full_sync_peak_rss", peak_rss_mb(), "MB", 0, params, digits=3)
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as admin:
                for kind, size in (("clients", clients), ("appointments", appointments)):
                    changes = {"kind": kind, "update": max(int(size * changed_share), 1)}
                    (await admin.post("/_admin/changes", json=changes)).raise_for_status()
            incremental, changed, statuses = await sync_both(database, settings)
            assert all(":incremental:succeeded:" in s for s in statuses), statuses
            changed_params = {**params, "changed": changed, "changed_share": changed_share}
            emit(
                "wellness_incremental_sync_seconds",
                incremental,
                "s",
                full,
                changed_params,
                digits=3,
            )
            emit(
                "wellness_incremental_sync",
                changed / incremental,
                "records/s",
                total / full,
                changed_params,
                digits=3,
            )
            emit(
                "wellness_incremental_sync_peak_rss",
                peak_rss_mb(),
                "MB",
                0,
                changed_params,
                digits=3,
            )
        finally:
            await database.dispose()
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--appointments", type=int, default=200_000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.appointments, args.changed))
