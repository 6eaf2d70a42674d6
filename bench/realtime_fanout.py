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

It also reports the server's CPU time (user and system) per client per broadcast, read
from /proc over the broadcasts: far steadier from run to run than the latencies, and it
shows how much of the fan-out is the kernel's loopback send, which no server avoids.

    uv run python bench/realtime_fanout.py [--clients 1000,10000] [--broadcasts 10]
        [--loaders 4] [--workers 1]

``--workers 2`` runs two web processes (and two bare servers sharing the port).
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
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

from websockets.frames import Frame

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import emit  # noqa: E402

PROTOCOL = "actioncable-v1-json"
IDENTIFIER = '{"channel":"UserUpdatesChannel"}'
SUBSCRIBE = json.dumps({"command": "subscribe", "identifier": IDENTIFIER})
# Connections each load-generator process opens at once; the server's listen backlog is
# 2048, shared by every load generator.
CONNECT_BATCH = 250

Loader = subprocess.Popen[bytes]


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
    """The resident memory of ``pid`` and every process under it (uvicorn's workers)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 + sum(map(rss_bytes, children(pid)))
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of ``pid`` and every process under it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]) / tick, int(fields[12]) / tick
    for child in children(pid):
        child_user, child_system = cpu_seconds(child)
        user, system = user + child_user, system + child_system
    return user, system


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


# --- the load generator (its own processes) -----------------------------------------


class CableClientProtocol(asyncio.Protocol):
    """One client on a bare asyncio protocol with websockets' sans-I/O parser.

    A task per client (the ``websockets.asyncio`` client) costs the load generator more CPU
    per message than the server spends sending it; here each frame is timestamped the
    moment its bytes arrive, in ``data_received``, before anything else is done with it.
    """

    def __init__(self, url: str, run: LoadRun) -> None:
        from websockets.client import ClientProtocol
        from websockets.typing import Subprotocol
        from websockets.uri import parse_uri

        self.run = run
        self.ws = ClientProtocol(parse_uri(url), subprotocols=[Subprotocol(PROTOCOL)])
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        received_at = time.time()
        # Nearly every read is one whole small text frame (FIN + text opcode, a length
        # under 126, no mask from a server): take it directly. websockets' parser costs
        # the load generators about as much CPU per frame as the server spends sending it.
        if data[0] == 0x81 and len(data) == data[1] + 2 and data[1] < 126:
            if data.startswith(b'{"identifier"', 2):
                self.run.frame(data[2:], received_at)
            return
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                data = bytes(event.data)
                if data.startswith(b'{"identifier"'):
                    self.run.frame(data, received_at)
            else:  # the handshake response
                self.ws.send_text(SUBSCRIBE.encode())
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.lost += 1

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            self.transport.write(chunk)


class LoadRun:
    """The receipts of one load-generator process."""

    def __init__(self, clients: int, broadcasts: int) -> None:
        self.latencies: list[float] = []
        self.expected = clients * broadcasts
        self.confirmed = 0
        self.lost = 0
        self.all_received = asyncio.Event()
        self._confirmations_awaited = 0
        self._enough_confirmed = asyncio.Event()

    async def wait_until_confirmed(self, count: int) -> None:
        self._confirmations_awaited = count
        if self.confirmed < count:
            self._enough_confirmed.clear()
            await self._enough_confirmed.wait()

    def frame(self, data: bytes, received_at: float) -> None:
        frame = json.loads(data)
        message = frame.get("message")
        if isinstance(message, dict) and "t" in message:
            self.latencies.append(received_at - message["t"])
            if len(self.latencies) >= self.expected:
                self.all_received.set()
        elif frame.get("type") == "confirm_subscription":
            self.confirmed += 1
            if self.confirmed >= self._confirmations_awaited:
                self._enough_confirmed.set()


async def load(url: str, clients: int, broadcasts: int) -> None:
    """Open ``clients`` connections, subscribe them all, then record every broadcast."""
    from websockets.uri import parse_uri

    uri = parse_uri(url)
    run = LoadRun(clients, broadcasts)
    loop = asyncio.get_running_loop()
    for start in range(0, clients, CONNECT_BATCH):
        batch = min(CONNECT_BATCH, clients - start)
        await asyncio.gather(
            *(
                loop.create_connection(lambda: CableClientProtocol(url, run), uri.host, uri.port)
                for _ in range(batch)
            )
        )
        await run.wait_until_confirmed(start + batch)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the publisher is done
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.all_received.wait(), 30)
    result = {"latencies": run.latencies, "expected": run.expected, "lost": run.lost}
    print(json.dumps(result), flush=True)
    os._exit(0)


# --- the baseline server -----------------------------------------------------------


async def bare_server(port: int, redis_url: str, reuse_port: bool) -> None:
    from redis.asyncio import Redis
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    from junction.platform.realtime.broker import channel_prefix

    clients: set[ServerConnection] = set()
    prefix = '{"identifier":' + json.dumps(IDENTIFIER) + ',"message":'

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await serve_client(ws)
        clients.discard(ws)

    async def serve_client(ws: ServerConnection) -> None:
        async for raw in ws:
            command = json.loads(raw)
            if command.get("command") == "subscribe":
                clients.add(ws)
                await ws.send(
                    json.dumps({"identifier": IDENTIFIER, "type": "confirm_subscription"})
                )

    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel_prefix(redis) + "user_updates")
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        subprotocols=[Subprotocol(PROTOCOL)],
        reuse_port=reuse_port,
    ):
        print("listening", flush=True)
        async for message in pubsub.listen():
            if message["type"] == "message":
                _, _, payload = message["data"].decode().partition(" ")
                broadcast(clients, prefix + payload + "}")


# --- the driver --------------------------------------------------------------------


def start_junction(port: int, redis_url: str, db: Path, workers: int) -> subprocess.Popen[bytes]:
    # The caller's JUNCTION_EVENT_LOOP passes through, to compare event loops.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JUNCTION_") or k == "JUNCTION_EVENT_LOOP"
    }
    env.update(
        JUNCTION_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
        JUNCTION_REDIS_URL=redis_url,
        JUNCTION_LOG_LEVEL="WARNING",
        JUNCTION_REALTIME_MAX_CONNECTIONS="20000",
        JUNCTION_RUN_EMBEDDED_WORKER="false",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "junction", "serve", "--port", str(port), "--workers", str(workers)],
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


def start_bare(port: int, redis_url: str, workers: int) -> list[subprocess.Popen[bytes]]:
    """``workers`` bare servers; more than one share the port (SO_REUSEPORT)."""
    command = [sys.executable, __file__, "--bare-server", str(port), "--redis-url", redis_url]
    if workers > 1:
        command.append("--reuse-port")
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(workers)]
    for process in processes:
        assert process.stdout is not None
        process.stdout.readline()
    return processes


async def publish(redis_url: str, broadcasts: int) -> None:
    from redis.asyncio import Redis

    from junction.platform.realtime.broker import RedisBroker

    redis = Redis.from_url(redis_url)
    broker = RedisBroker(redis, replay_size=1000, replay_ttl_seconds=600)
    for n in range(broadcasts):
        await broker.publish("user_updates", {"type": "new_user", "n": n, "t": time.time()})
        await asyncio.sleep(1.0)
    await redis.aclose()


def start_loaders(url: str, clients: int, broadcasts: int, loaders: int) -> list[Loader]:
    """``loaders`` processes sharing ``clients`` between them; each prints ``ready``."""
    shares = [clients // loaders + (1 if i < clients % loaders else 0) for i in range(loaders)]
    started = [
        subprocess.Popen(
            [sys.executable, __file__, "--load", url, str(share), str(broadcasts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for share in shares
        if share
    ]
    for loader in started:
        assert loader.stdout is not None
        if loader.stdout.readline().strip() != b"ready":
            raise RuntimeError("a load generator failed")
    return started


def collect(loaders: list[Loader]) -> dict[str, Any]:
    """Tell every load generator the publisher is done; merge what they received."""
    for loader in loaders:
        assert loader.stdin is not None
        loader.stdin.write(b"done\n")
        loader.stdin.flush()
    latencies: list[float] = []
    expected = lost = 0
    for loader in loaders:
        assert loader.stdout is not None
        result = json.loads(loader.stdout.readline())
        latencies.extend(result["latencies"])
        expected += result["expected"]
        lost += result["lost"]
        loader.wait(30)
    return {"latencies": sorted(latencies), "expected": expected, "lost": lost}


def measure(
    port: int, server_pids: list[int], clients: int, options: argparse.Namespace
) -> dict[str, Any]:
    idle_rss = sum(map(rss_bytes, server_pids))
    url = f"ws://127.0.0.1:{port}/cable"
    loaders = start_loaders(url, clients, options.broadcasts, options.loaders)
    time.sleep(2)
    connected_rss = sum(map(rss_bytes, server_pids))
    cpu_before = [cpu_seconds(pid) for pid in server_pids]
    asyncio.run(publish(options.redis_url, options.broadcasts))
    cpu_after = [cpu_seconds(pid) for pid in server_pids]
    result = collect(loaders)
    latencies = result["latencies"]
    return {
        "idle_rss": idle_rss,
        "connected_rss": connected_rss,
        "received": len(latencies),
        "expected": result["expected"],
        "lost": result["lost"],
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        # Per client per broadcast; pings and idle time in the window are included.
        "user_us": _spent(cpu_before, cpu_after, 0) / (clients * options.broadcasts) * 1e6,
        "system_us": _spent(cpu_before, cpu_after, 1) / (clients * options.broadcasts) * 1e6,
    }


def _spent(before: list[tuple[float, float]], after: list[tuple[float, float]], kind: int) -> float:
    return sum(end[kind] - start[kind] for start, end in zip(before, after, strict=True))


def run(options: argparse.Namespace) -> None:
    raise_open_file_limit()
    for clients in [int(n) for n in options.clients.split(",")]:
        params = {
            "clients": clients,
            "broadcasts": options.broadcasts,
            "load_generators": options.loaders,
            "web_processes": options.workers,
            "transport": "redis",
        }
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            db = Path(tmp) / "bench.db"
            server = start_junction(port, options.redis_url, db, options.workers)
            try:
                ours = measure(port, [server.pid], clients, options)
            finally:
                server.terminate()
                server.wait(30)
        port = free_port()
        bare = start_bare(port, options.redis_url, options.workers)
        try:
            base = measure(port, [process.pid for process in bare], clients, options)
        finally:
            for process in bare:
                process.kill()
                process.wait()
        report(ours, base, clients, params)


def report(
    ours: dict[str, Any], base: dict[str, Any], clients: int, params: dict[str, Any]
) -> None:
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
    for key in ("user_us", "system_us"):
        emit(
            f"realtime_server_cpu_{key.removesuffix('_us')}_per_client_broadcast",
            ours[key],
            "µs",
            base[key],
            {**params, "baseline": "bare websockets server, websockets.broadcast"},
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
                "baseline_received": base["received"],
                "baseline": "bare websockets server, websockets.broadcast",
            },
        )


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where installed, as uvicorn picks it for the server."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="1000,10000")
    parser.add_argument("--broadcasts", type=int, default=10)
    parser.add_argument("--loaders", type=int, default=4, help="load-generator processes")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("JUNCTION_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="web processes (and bare servers) to fan out"
    )
    parser.add_argument("--load", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        raise_open_file_limit()
        url, clients, broadcasts = args.load
        run_loop(load(url, int(clients), int(broadcasts)))
    elif args.bare_server:
        raise_open_file_limit()
        run_loop(bare_server(args.bare_server, args.redis_url, args.reuse_port))
    else:
        run(args)


if __name__ == "__main__":
    main()
