"""Real server processes on free loopback ports, for tests that need sockets or signals."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import httpx
import uvicorn
from starlette.types import ASGIApp

from junction.settings import Settings


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]

    def logs(self) -> str:
        """Everything the server wrote to stderr so far (JSON log lines)."""
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


@contextmanager
def serving_in_thread(app: ASGIApp, name: str) -> Iterator[str]:
    """``app`` (an emulator) served by uvicorn in a thread on a free loopback port; yields
    its URL. A thread rather than the test's event loop, so that blocking clients
    (pyairtable, the sync CLI) can call it too."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {name} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUNCTION_")}
    env.update(
        JUNCTION_ENV=settings.env.value,
        JUNCTION_DATABASE_URL=settings.database_url,
        JUNCTION_MIGRATE_ON_START="false",
        JUNCTION_LOG_FORMAT="json",
        JUNCTION_SHUTDOWN_GRACE_SECONDS="10",
    )
    if settings.redis_url is not None:
        env["JUNCTION_REDIS_URL"] = settings.redis_url.get_secret_value()
    env.update(extra)
    return env


@contextmanager
def start_live_server(
    settings: Settings,
    command: Sequence[str] = ("-m", "junction", "serve"),
    ready_path: str = "/ready",
    **extra_env: str,
) -> Iterator[LiveServer]:
    port = free_port()
    # A file, not a pipe: a pipe nobody reads fills up and stalls the server.
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(
            [sys.executable, *command, "--host", "127.0.0.1", "--port", str(port)],
            env=environment_for(settings, **extra_env),
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            # Its own process group: with --workers N, killing uvicorn's supervisor alone
            # would leave its web processes running, on the test's database, after the test.
            start_new_session=True,
        )
        server = LiveServer(f"http://127.0.0.1:{port}", process, log_file)
        try:
            wait_until_ready(server, path=ready_path)
            yield server
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_until_ready(server: LiveServer, timeout: float = 30.0, path: str = "/ready") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.logs()}")
        try:
            if httpx.get(f"{server.base_url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{server.base_url} was not ready within {timeout} s")
