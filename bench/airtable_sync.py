"""Airtable records written per second by the users sync, against the emulator's real limit
of 5 requests per second per base (a 429 starts a 30-second penalty).

Each run creates ``--users`` users through the service layer (one transaction each, its
sync job enqueued with it, as ``POST /api/v1/users`` does), all pending, in a fresh SQLite
database; then starts ``junction worker`` (default settings, only pointed at an emulator
running in its own process) and waits until every user is synced and the emulator holds
exactly that many records. The time runs from the first sync job's start to the last user
marked synced (both as the worker recorded them); ``wall_seconds`` adds the worker's start.

Baseline: the ceiling that batching allows, 10 records per request x 5 requests/s = 50
records/s. Also reported: the requests the emulator served (baseline: one per 10 users)
and the 429s it sent (must be 0), and the shortest span of 6 successive requests as the
emulator saw them (baseline: the 1,000 ms under which Airtable answers 429). One run per
``--rates`` value; ``default`` leaves ``airtable_requests_per_second`` at its default.

    uv run --group bench python bench/airtable_sync.py [--users 1000] [--rates default,4.75]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.live import environment_for, free_port

import junction.profiles.jobs  # noqa: F401  (registers the sync job that creates enqueue)
from bench.report import emit
from junction.emulators.airtable import DEFAULT_BASE_ID, DEFAULT_TABLE, DEFAULT_TOKEN
from junction.platform.db import Database
from junction.platform.jobs.models import Job
from junction.platform.migrations import upgrade_to_head
from junction.profiles import service
from junction.profiles.models import SyncStatus, User
from junction.profiles.schemas import UserCreate
from junction.settings import Settings

EMULATOR_REQUESTS_PER_SECOND = 5
RECORDS_PER_REQUEST = 10
CEILING = float(RECORDS_PER_REQUEST * EMULATOR_REQUESTS_PER_SECOND)
DEFAULT_RATE = float(Settings.model_fields["airtable_requests_per_second"].default)


@dataclass
class Emulator:
    process: subprocess.Popen[bytes]
    url: str

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.get("/_emulator/stats")
        return stats

    def records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.get(
            f"/_emulator/bases/{DEFAULT_BASE_ID}/tables/{DEFAULT_TABLE}/records"
        )["records"]
        return records

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_airtable_emulator() -> Emulator:
    """The Airtable emulator in its own process, with Airtable's limit and penalty."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "junction.emulators.airtable",
            "--port",
            str(port),
            "--requests-per-second",
            str(EMULATOR_REQUESTS_PER_SECOND),
            "--penalty-seconds",
            "30",
        ],
        stdout=subprocess.DEVNULL,
    )
    emulator = Emulator(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            emulator.stats()
            return emulator
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the Airtable emulator did not start")


def tightest_window_ms(records: list[dict[str, Any]]) -> float | None:
    """The shortest time in which the emulator created records of 6 successive requests.

    Records of one request share a creation time (within a few milliseconds); the emulator answers
    429 when 6 requests arrive within one second, so this must stay above 1,000 ms: how far
    above is the throttle's margin for jitter.
    """
    moments = sorted(
        datetime.fromisoformat(record["createdTime"].replace("Z", "+00:00")).timestamp()
        for record in records
    )
    times: list[float] = []
    for moment in moments:
        # One request's records may straddle a millisecond.
        if not times or moment - times[-1] > 0.02:
            times.append(moment)
    spans = [times[i + 5] - times[i] for i in range(len(times) - 5)]
    return 1000 * min(spans) if spans else None


def airtable_env(emulator_url: str) -> dict[str, str]:
    """What points Junction at the emulator; everything else keeps its default."""
    return {
        "JUNCTION_AIRTABLE_API_KEY": DEFAULT_TOKEN,
        "JUNCTION_AIRTABLE_BASE_ID": DEFAULT_BASE_ID,
        "JUNCTION_AIRTABLE_ENDPOINT_URL": emulator_url,
    }


async def create_users(settings: Settings, count: int) -> None:
    database = Database(settings)
    try:
        for index in range(count):
            fields = UserCreate(
                first_name="Ada",
                last_name=f"Lovelace {index}",
                email=f"sync{index}@example.com",
                date_of_birth=date(1985, 12, 10),
            )
            async with database.transaction() as session:
                await service.create_user(session, fields, None, broker=None)
    finally:
        await database.dispose()


@dataclass
class Progress:
    synced: int
    first_job_started: Any
    last_synced: Any


async def progress(settings: Settings) -> Progress:
    database = Database(settings)
    try:
        async with database.reading() as session:
            synced = await session.scalar(
                select(func.count()).where(User.sync_status == SyncStatus.synced.value)
            )
            first = await session.scalar(
                select(func.min(Job.started_at)).where(Job.name == service.SYNC_JOB)
            )
            last = await session.scalar(select(func.max(User.synced_at)))
        return Progress(int(synced or 0), first, last)
    finally:
        await database.dispose()


def bench_rate(rate: str, users: int, timeout: float) -> None:
    requests_per_second = DEFAULT_RATE if rate == "default" else float(rate)
    emulator = start_airtable_emulator()
    try:
        with tempfile.TemporaryDirectory() as directory:
            settings = Settings(
                database_url=f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}",
                redis_url=None,
            )
            upgrade_to_head(settings)
            asyncio.run(create_users(settings, users))
            env = {
                **airtable_env(emulator.url),
                "JUNCTION_LOG_LEVEL": "WARNING",
                "JUNCTION_STORAGE_PATH": str(Path(directory) / "files"),
            }
            if rate != "default":
                env["JUNCTION_AIRTABLE_REQUESTS_PER_SECOND"] = rate
            with tempfile.TemporaryFile() as log_file:
                started = time.perf_counter()
                worker = subprocess.Popen(
                    [sys.executable, "-m", "junction", "worker"],
                    env=environment_for(settings, **env),
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                )
                try:
                    done = asyncio.run(wait_until_synced(settings, emulator, users, timeout))
                    wall = time.perf_counter() - started
                finally:
                    worker.terminate()
                    worker.wait(30)
                failed = worker.returncode not in (0, -15)
                if failed or not done:
                    log_file.seek(0)
                    print(log_file.read().decode(errors="replace")[-3000:], file=sys.stderr)
            report(settings, emulator, users, rate, requests_per_second, done, wall)
    finally:
        emulator.stop()


async def wait_until_synced(
    settings: Settings, emulator: Emulator, users: int, within: float
) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await progress(settings)).synced >= users:
            return len(await asyncio.to_thread(emulator.records)) >= users
        await asyncio.sleep(0.2)
    return False


def report(
    settings: Settings,
    emulator: Emulator,
    users: int,
    rate: str,
    requests_per_second: float,
    done: bool,
    wall: float,
) -> None:
    state = asyncio.run(progress(settings))
    records = emulator.records()
    stats = emulator.stats()
    distinct = len({record["fields"].get("Junction ID") for record in records})
    if state.last_synced is None or state.first_job_started is None:
        raise RuntimeError("no user was synced")
    seconds = (state.last_synced - state.first_job_started).total_seconds()
    params: dict[str, Any] = {
        "users": users,
        "requests_per_second": requests_per_second,
        "setting": rate,
        "database": "sqlite",
        "records": len(records),
        "distinct_records": distinct,
        "complete": done and state.synced == users and len(records) == distinct == users,
        "seconds": round(seconds, 2),
        "wall_seconds": round(wall, 2),
    }
    emit("airtable.records_written", state.synced / seconds, "records/s", CEILING, params)
    requests = sum(stats["requests"].values())
    minimum = math.ceil(users / RECORDS_PER_REQUEST)
    emit("airtable.requests", requests, "requests", minimum, params)
    emit("airtable.rate_limited", stats["rate_limited"], "429s", None, params)
    window = tightest_window_ms(records)
    if window is not None:
        emit("airtable.tightest_6_requests", window, "ms", 1000.0, params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument(
        "--rates",
        default="default,4.75",
        help="airtable_requests_per_second per run; `default` keeps the setting's default",
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per run, at most")
    args = parser.parse_args()
    for rate in args.rates.split(","):
        bench_rate(rate.strip(), args.users, args.timeout)


if __name__ == "__main__":
    main()
