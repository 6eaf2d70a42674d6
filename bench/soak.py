"""Soak: the mixed workload at half its measured capacity for a long time; memory must stay
flat, p99 steady, and no request fail.

`junction serve --demo` runs as users run it (JSON access log at info to a file, embedded
worker and scheduler), so the provider feed, the wellness sync and the Airtable sync run
against the mounted emulators on their schedules throughout. The workload mixes chat
message creates and reads, event reads and user creates (one in ten requests). First a
closed loop at ``--concurrency`` for ``--probe-seconds`` measures capacity; then an open
loop sends half that rate for ``--minutes``, recording each request's latency and the
server's resident memory every ten seconds.

Reported: the memory slope (least squares after the first fifth of the run, KiB per
minute; baseline: the resident memory at the start, for scale), the p99 of the last minute
against the first full minute's (ratio), and the number of failed requests (baseline 0).

    uv run --group bench python bench/soak.py [--minutes 30] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.live import free_port

from bench.report import emit

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class Samples:
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    errors: int = 0
    memory: list[tuple[float, int]] = field(default_factory=list)  # (at, KiB)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Workload:
    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.key = key
        self.counter = itertools.count()
        self.token = ""
        self.failures: Counter[str] = Counter()

    async def prepare(self) -> None:
        created = await self.client.post("/applications", json={"application": {"name": "soak"}})
        self.token = created.json()["token"]
        for _ in range(5):
            await self.client.post(f"/applications/{self.token}/chats")

    async def one(self) -> bool:
        n = next(self.counter)
        chat = n % 5 + 1
        kind = n % 10
        if kind < 4:
            response = await self.client.post(
                f"/applications/{self.token}/chats/{chat}/messages",
                json={"message": {"body": f"soak message {n}"}},
            )
        elif kind < 6:
            response = await self.client.get(f"/applications/{self.token}/chats/{chat}/messages")
        elif kind < 9:
            response = await self.client.get(
                "/api/v1/events",
                params={
                    "starts_at": "2021-01-01T00:00:00Z",
                    "ends_at": "2031-12-31T23:59:59Z",
                    "page": 1 + n % 3,
                },
            )
        else:
            response = await self.client.post(
                "/api/v1/users",
                headers={"Authorization": f"Bearer {self.key}"},
                data={
                    "first_name": "Soak",
                    "last_name": f"User{n}",
                    "email": f"soak{n}-{random.getrandbits(32)}@example.com",
                    "date_of_birth": "1990-01-01",
                },
                files={"file": ("a.png", PNG, "image/png")},
            )
        if response.status_code >= 400:
            self.failures[f"{response.request.method} {response.status_code}"] += 1
        return response.status_code < 400


async def timed(workload: Workload, samples: Samples) -> None:
    started = time.perf_counter()
    try:
        ok = await workload.one()
    except httpx.HTTPError:
        ok = False
    samples.latencies.append((time.monotonic(), time.perf_counter() - started))
    if not ok:
        samples.errors += 1


async def capacity(workload: Workload, seconds: float, concurrency: int) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await workload.one()
            done += 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / seconds


async def soak(workload: Workload, rate: float, seconds: float, pid: int) -> Samples:
    samples = Samples()
    deadline = time.monotonic() + seconds
    pending: set[asyncio.Task[None]] = set()

    async def watch_memory() -> None:
        while time.monotonic() < deadline:
            samples.memory.append((time.monotonic(), rss_kib(pid)))
            await asyncio.sleep(10)

    watcher = asyncio.create_task(watch_memory())
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        task = asyncio.create_task(timed(workload, samples))
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_at += random.expovariate(rate)
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*pending)
    await watcher
    return samples


def slope_kib_per_minute(memory: list[tuple[float, int]]) -> float:
    """Over the run after its first fifth: the warm-up (caches and pools filling, the demo's
    first syncs) is growth that stops, not a leak."""
    memory = memory[len(memory) // 5 :]
    times = [(at - memory[0][0]) / 60 for at, _ in memory]
    values = [float(kib) for _, kib in memory]
    return statistics.linear_regression(times, values).slope


def p99_of_minute(latencies: list[tuple[float, float]], start: float, minute: int) -> float:
    window = [s for at, s in latencies if start + 60 * minute <= at < start + 60 * (minute + 1)]
    return statistics.quantiles(window, n=100)[98] * 1000 if len(window) > 100 else 0.0


async def run(arguments: argparse.Namespace, base_url: str, key: str, pid: int) -> None:
    limits = httpx.Limits(max_connections=arguments.concurrency * 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        workload = Workload(client, key)
        await workload.prepare()
        measured = await capacity(workload, arguments.probe_seconds, arguments.concurrency)
        rate = measured / 2
        start = time.monotonic()
        samples = await soak(workload, rate, arguments.minutes * 60, pid)
    minutes = int(arguments.minutes)
    first, last = (
        p99_of_minute(samples.latencies, start, 1),
        p99_of_minute(samples.latencies, start, minutes - 1),
    )
    params = {
        "minutes": arguments.minutes,
        "capacity_per_s": round(measured, 1),
        "rate_per_s": round(rate, 1),
        "requests": len(samples.latencies),
    }
    emit(
        "soak_memory_slope",
        slope_kib_per_minute(samples.memory),
        "KiB/min",
        samples.memory[0][1],
        params,
    )
    emit("soak_p99_last_minute", last, "ms", first, {**params, "baseline": "p99 of minute 2"})
    failures = dict(workload.failures)
    emit(
        "soak_errors", samples.errors, "requests", None, {**params, "failures": failures}, digits=0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--probe-seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")},
            "JUNCTION_ENV": "production",
            "JUNCTION_SECRET_KEY": "soak-" + "s" * 40,
            "JUNCTION_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/soak.db",
            "JUNCTION_STORAGE_PATH": f"{folder}/files",
            "JUNCTION_RATE_LIMITS": '{"default": "10000000/minute", "write": "10000000/minute",'
            ' "user_create": "10000000/minute"}',
        }
        junction = [sys.executable, "-m", "junction"]
        subprocess.run([*junction, "migrate"], env=env, check=True, capture_output=True)
        created = subprocess.run(
            [*junction, "keys", "create", "--scope", "write", "--scope", "read"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        key = created.stdout.strip().splitlines()[-1]
        port = free_port()
        with open(Path(folder) / "junction.log", "wb") as log:
            server = subprocess.Popen(
                [*junction, "serve", "--demo", "--port", str(port)],
                env=env,
                stderr=log,
                stdout=subprocess.DEVNULL,
            )
            try:
                base_url = f"http://127.0.0.1:{port}"
                for _ in range(300):
                    try:
                        if httpx.get(f"{base_url}/ready").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)
                asyncio.run(run(arguments, base_url, key, server.pid))
            finally:
                server.terminate()
                server.wait(30)


if __name__ == "__main__":
    main()
