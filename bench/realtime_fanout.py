"""Live-channel fan-out: memory per idle connection and publish-to-receipt latency.

Runs `junction serve` (with Redis) and, in a separate process, a load generator that opens
N Action Cable connections on loopback and subscribes each to UserUpdatesChannel. This
process then publishes through Redis, as a worker would; each message carries its publish
time and the load generator records when each client receives it.

Baselines, measured in the same run:
- latency: the same fan-out from a bare `websockets` server that relays the same Redis
  channel with `websockets.broadcast` (no protocol, no queues, no auth): the floor for
  Python on this machine;
- memory: the server's RSS with no connection open.

    uv run python bench/realtime_fanout.py [--clients 1000,10000] [--broadcasts 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IDENTIFIER = '{"channel":"UserUpdatesChannel"}'
CHANNEL = "junction:realtime:stream:user_updates"


def raise_open_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# --- the load generator (its own process) -------------------------------------------


async def load(url: str, clients: int, broadcasts: int) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    latencies: list[float] = []
    done = asyncio.Event()
    expected = clients * broadcasts

    async def client() -> None:
        with contextlib.suppress(ConnectionClosed):
            await listen()

    async def listen() -> None:
        async with connect(
            url,
            subprotocols=["actioncable-v1-json"],
            compression=None,
            open_timeout=60,
        ) as ws:
            await ws.send(json.dumps({"command": "subscribe", "identifier": IDENTIFIER}))
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") == "confirm_subscription":
                    ready.release()
                elif "message" in frame and isinstance(frame["message"], dict):
                    latencies.append(time.time() - frame["message"]["t"])
                    if len(latencies) >= expected:
                        done.set()

    ready = asyncio.Semaphore(0)
    tasks = []
    for start in range(0, clients, 500):
        batch = [asyncio.create_task(client()) for _ in range(min(500, clients - start))]
        tasks.extend(batch)
        for _ in batch:
            await ready.acquire()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # the publisher is done
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 30)
    print(json.dumps({"latencies": latencies, "expected": expected}), flush=True)
    os._exit(0)


# --- the baseline server -----------------------------------------------------------


async def bare_server(port: int, redis_url: str) -> None:
    from redis.asyncio import Redis
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()
    prefix = '{"identifier":' + json.dumps(IDENTIFIER) + ',"message":'

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            command = json.loads(raw)
            if command.get("command") == "subscribe":
                clients.add(ws)
                await ws.send(
                    json.dumps({"identifier": IDENTIFIER, "type": "confirm_subscription"})
                )
        clients.discard(ws)

    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(CHANNEL)
    async with serve(
        handler, "127.0.0.1", port, compression=None, subprotocols=["actioncable-v1-json"]
    ):
        print("listening", flush=True)
        async for message in pubsub.listen():
            if message["type"] == "message":
                _, _, payload = message["data"].decode().partition(" ")
                broadcast(clients, prefix + payload + "}")


# --- the driver --------------------------------------------------------------------


def start_junction(port: int, redis_url: str, db: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")}
    env.update(
        JUNCTION_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
        JUNCTION_REDIS_URL=redis_url,
        JUNCTION_LOG_LEVEL="WARNING",
        JUNCTION_REALTIME_MAX_CONNECTIONS="20000",
        JUNCTION_RUN_EMBEDDED_WORKER="false",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "junction", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("junction did not become ready")


def start_bare(port: int, redis_url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", str(port), "--redis-url", redis_url],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.readline()
    return process


async def publish(redis_url: str, broadcasts: int) -> None:
    from redis.asyncio import Redis

    from junction.platform.realtime.broker import RedisBroker

    redis = Redis.from_url(redis_url)
    broker = RedisBroker(redis, replay_size=1000, replay_ttl_seconds=600)
    for n in range(broadcasts):
        await broker.publish("user_updates", {"type": "new_user", "n": n, "t": time.time()})
        await asyncio.sleep(1.0)
    await redis.aclose()


def measure(
    port: int, server_pid: int, clients: int, broadcasts: int, redis_url: str
) -> dict[str, Any]:
    idle_rss = rss_bytes(server_pid)
    loadgen = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--load",
            f"ws://127.0.0.1:{port}/cable",
            str(clients),
            str(broadcasts),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert loadgen.stdout is not None
    assert loadgen.stdin is not None
    if loadgen.stdout.readline().strip() != b"ready":
        raise RuntimeError("load generator failed")
    time.sleep(2)
    connected_rss = rss_bytes(server_pid)
    asyncio.run(publish(redis_url, broadcasts))
    loadgen.stdin.write(b"done\n")
    loadgen.stdin.flush()
    result = json.loads(loadgen.stdout.readline())
    loadgen.wait(30)
    latencies = sorted(result["latencies"])
    return {
        "idle_rss": idle_rss,
        "connected_rss": connected_rss,
        "received": len(latencies),
        "expected": result["expected"],
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def emit(name: str, value: float, unit: str, baseline: float, params: dict[str, Any]) -> None:
    ratio = round(value / baseline, 2) if baseline else None
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 2),
                "unit": unit,
                "baseline": round(baseline, 2),
                "ratio": ratio,
                "params": params,
            }
        ),
        flush=True,
    )


def run(clients_list: list[int], broadcasts: int, redis_url: str) -> None:
    raise_open_file_limit()
    for clients in clients_list:
        params = {"clients": clients, "broadcasts": broadcasts, "transport": "redis"}
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            server = start_junction(port, redis_url, Path(tmp) / "bench.db")
            try:
                ours = measure(port, server.pid, clients, broadcasts, redis_url)
            finally:
                server.terminate()
                server.wait(30)
        port = free_port()
        bare = start_bare(port, redis_url)
        try:
            base = measure(port, bare.pid, clients, broadcasts, redis_url)
        finally:
            bare.kill()
            bare.wait()
        per_conn = (ours["connected_rss"] - ours["idle_rss"]) / clients / 1024
        base_per_conn = (base["connected_rss"] - base["idle_rss"]) / clients / 1024
        emit("realtime_memory_per_idle_connection", per_conn, "KiB", base_per_conn, params)
        emit(
            "realtime_server_rss_connected",
            ours["connected_rss"] / 2**20,
            "MiB",
            ours["idle_rss"] / 2**20,
            {**params, "baseline": "same server, 0 connections"},
        )
        for key in ("p50_ms", "p99_ms", "max_ms"):
            emit(
                f"realtime_publish_to_receipt_{key.removesuffix('_ms')}",
                ours[key],
                "ms",
                base[key],
                {
                    **params,
                    "received": ours["received"],
                    "expected": ours["expected"],
                    "baseline": "bare websockets server, websockets.broadcast",
                },
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1000,10000")
    parser.add_argument("--broadcasts", type=int, default=10)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("JUNCTION_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    )
    parser.add_argument("--load", nargs=3)
    parser.add_argument("--bare-server", type=int)
    args = parser.parse_args()
    if args.load:
        raise_open_file_limit()
        url, clients, broadcasts = args.load
        asyncio.run(load(url, int(clients), int(broadcasts)))
    elif args.bare_server:
        raise_open_file_limit()
        asyncio.run(bare_server(args.bare_server, args.redis_url))
    else:
        run([int(n) for n in args.clients.split(",")], args.broadcasts, args.redis_url)


if __name__ == "__main__":
    main()
